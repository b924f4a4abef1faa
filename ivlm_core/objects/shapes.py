"""Procedural object meshes built with trimesh from the recipes in `categories.yaml`.

A recipe is a list of parts. Each part is one closed primitive in the object's canonical frame
(metres, +y up), given as a mapping with exactly one primitive key and optional placement keys:

- `box: [x, y, z]`: extents.
- `ellipsoid: [x, y, z]`: extents (a scaled icosphere).
- `cylinder: [radius, length]`: along the part's axis.
- `capsule: [radius, length]`: along the part's axis, `length` from tip to tip.
- `lathe: [[r, h], ...]`: a profile (radius, height) revolved about the part's axis; a profile
  that does not start and end on the axis is closed there, so the solid is always watertight.
- `torus: [major_radius, minor_radius]`: ring about the part's axis.
- `at: [x, y, z]`: where the part's centre goes (default the origin); for a lathe, where h = 0 goes.
- `axis: [x, y, z]`: direction of the part's own up axis (default +y).
- `scale: [x, y, z]`: per-axis scale in the canonical frame, applied after `axis` and before `at`
  (flattened cylinders, oval rings).

Parts are concatenated, not boolean-unioned (no boolean engine is in the lock file): every part is
watertight with consistent winding, so the whole mesh is too, but overlapping parts leave some
vertices inside other parts. Tessellation follows one target edge length per object so that the
vertex density, and with it the resolution of per-vertex contact, is roughly uniform.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import trimesh

PRIMITIVES = ("box", "ellipsoid", "cylinder", "capsule", "lathe", "torus")
PLACEMENT_KEYS = ("at", "axis", "scale")
MIN_VERTICES = 300
MAX_VERTICES = 3000


def _sections(circumference: float, edge: float, low: int, high: int) -> int:
    return int(np.clip(np.ceil(circumference / edge), low, high))


def _subdivide_to_edge(mesh: trimesh.Trimesh, edge: float, max_rounds: int = 5) -> trimesh.Trimesh:
    """Midpoint-subdivide every face until no edge is longer than `edge` (keeps the mesh watertight)."""
    vertices, faces = mesh.vertices, mesh.faces
    for _ in range(max_rounds):
        lengths = np.linalg.norm(vertices[faces[:, [1, 2, 0]]] - vertices[faces], axis=-1)
        if lengths.max() <= edge:
            break
        vertices, faces = trimesh.remesh.subdivide(vertices, faces)
    return trimesh.Trimesh(vertices, faces, process=False)


def _densify_profile(profile: np.ndarray, edge: float) -> np.ndarray:
    """Insert points along a (radius, height) polyline so no segment is longer than `edge`."""
    points = [profile[0]]
    for a, b in itertools.pairwise(profile):
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / edge)))
        points.extend(a + (b - a) * t for t in np.arange(1, n + 1) / n)
    return np.asarray(points)


def _lathe(profile: Sequence[Sequence[float]], edge: float) -> trimesh.Trimesh:
    """Revolve a (radius, height) profile about +z, closing it on the axis."""
    prof = np.asarray(profile, dtype=np.float64)
    if prof.ndim != 2 or prof.shape[1] != 2 or len(prof) < 2 or np.any(prof[:, 0] < 0):
        raise ValueError(f"lathe profile must be a list of >= 2 [radius >= 0, height] pairs, got {profile!r}")
    if prof[0, 0] > 0:
        prof = np.vstack([[0.0, prof[0, 1]], prof])
    if prof[-1, 0] > 0:
        prof = np.vstack([prof, [0.0, prof[-1, 1]]])
    dense = _densify_profile(prof, edge)
    sections = _sections(2 * np.pi * prof[:, 0].max(), edge, 16, 64)
    mesh = trimesh.creation.revolve(dense, sections=sections)
    if mesh.volume < 0:
        mesh.invert()
    return mesh


def _primitive(kind: str, value: Any, edge: float) -> trimesh.Trimesh:
    """One closed primitive in its local frame, its symmetry axis along +z."""
    if kind == "box":
        return _subdivide_to_edge(trimesh.creation.box(extents=[value[0], value[2], value[1]]), edge)
    if kind == "ellipsoid":
        radii = np.array([value[0], value[2], value[1]], dtype=np.float64) / 2.0
        subdivisions = int(np.clip(np.ceil(np.log2(1.2 * radii.max() / edge)), 1, 4))
        sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
        return trimesh.Trimesh(sphere.vertices * radii, sphere.faces, process=False)
    if kind == "cylinder":
        radius, length = value
        half = length / 2.0
        return _lathe([[0.0, -half], [radius, -half], [radius, half], [0.0, half]], edge)
    if kind == "capsule":
        radius, length = value
        if length < 2 * radius:
            raise ValueError(f"capsule length {length} must be at least twice its radius {radius}")
        sections = _sections(2 * np.pi * radius, edge, 12, 48)
        rings = _sections(np.pi * radius, edge, 4, 16)
        return trimesh.creation.capsule(height=length - 2 * radius, radius=radius, count=[rings, sections])
    if kind == "lathe":
        return _lathe(value, edge)
    if kind == "torus":
        major, minor = value
        return trimesh.creation.torus(
            major,
            minor,
            major_sections=_sections(2 * np.pi * major, edge, 12, 64),
            minor_sections=_sections(2 * np.pi * minor, edge, 8, 24),
        )
    raise ValueError(f"unknown primitive {kind!r}; expected one of {PRIMITIVES}")


def _part_mesh(part: Mapping[str, Any], edge: float) -> trimesh.Trimesh:
    kinds = [key for key in part if key in PRIMITIVES]
    unknown = [key for key in part if key not in PRIMITIVES and key not in PLACEMENT_KEYS]
    if len(kinds) != 1 or unknown:
        raise ValueError(
            f"a recipe part needs exactly one of {PRIMITIVES} plus optional {PLACEMENT_KEYS}, "
            f"got {dict(part)!r}"
        )
    mesh = _primitive(kinds[0], part[kinds[0]], edge)
    # local +z (the part's up axis) -> canonical +y, local +y -> canonical -z, so boxes and
    # ellipsoids keep their [x, y, z] extents in the canonical frame.
    to_canonical = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    vertices = mesh.vertices @ to_canonical.T
    axis = np.asarray(part.get("axis", (0.0, 1.0, 0.0)), dtype=np.float64)
    if axis.shape != (3,) or not np.linalg.norm(axis) > 0:
        raise ValueError(f"part axis must be a non-zero 3-vector, got {part.get('axis')!r}")
    rotation = trimesh.geometry.align_vectors([0.0, 1.0, 0.0], axis / np.linalg.norm(axis))[:3, :3]
    scale = np.asarray(part.get("scale", (1.0, 1.0, 1.0)), dtype=np.float64)
    if scale.shape != (3,) or not np.all(scale > 0):
        raise ValueError(f"part scale must be three positive factors, got {part.get('scale')!r}")
    vertices = vertices @ rotation.T * scale
    vertices = vertices + np.asarray(part.get("at", (0.0, 0.0, 0.0)), dtype=np.float64)
    return trimesh.Trimesh(vertices, mesh.faces, process=False)


def build_recipe(parts: Sequence[Mapping[str, Any]], edge: float) -> trimesh.Trimesh:
    """Concatenate the recipe's parts, tessellated to about `edge` metres; not yet centred."""
    if not parts:
        raise ValueError("a recipe needs at least one part")
    meshes = [_part_mesh(part, edge) for part in parts]
    return trimesh.util.concatenate(meshes)


def build_object(parts: Sequence[Mapping[str, Any]], size_m: Sequence[float]) -> trimesh.Trimesh:
    """Build a recipe with MIN_VERTICES..MAX_VERTICES vertices, centred on its bounding-box centre.

    The target edge starts at 1/30 of the object's largest extent and is adapted until the vertex
    count falls in range (or the count stops responding, e.g. for primitives at their minimum
    tessellation).
    """
    edge = float(max(size_m)) / 30.0
    mesh = build_recipe(parts, edge)
    for _ in range(8):
        n = len(mesh.vertices)
        if MIN_VERTICES <= n <= MAX_VERTICES:
            break
        edge *= 0.7 if n < MIN_VERTICES else 1.4
        mesh = build_recipe(parts, edge)
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    return mesh


def generic_parts(shape: str, size_m: Sequence[float]) -> list[dict[str, Any]]:
    """The one-part recipe of a generic `box`, `ellipsoid`, `cylinder` (y up) or `capsule` (long axis)."""
    x, y, z = (float(v) for v in size_m)
    if shape == "box":
        return [{"box": [x, y, z]}]
    if shape == "ellipsoid":
        return [{"ellipsoid": [x, y, z]}]
    if shape == "cylinder":
        radius = max(x, z) / 2.0
        return [{"cylinder": [radius, y], "scale": [x / (2 * radius), 1.0, z / (2 * radius)]}]
    if shape == "capsule":
        dims = np.array([x, y, z])
        long_axis = int(np.argmax(dims))
        radius = float(np.delete(dims, long_axis).max()) / 2.0
        scale = np.where(np.arange(3) == long_axis, 1.0, dims / (2 * radius))
        axis = np.eye(3)[long_axis]
        return [{"capsule": [radius, float(dims[long_axis])], "axis": axis.tolist(), "scale": scale.tolist()}]
    raise ValueError(f"unknown generic shape {shape!r}; expected box, ellipsoid, cylinder or capsule")
