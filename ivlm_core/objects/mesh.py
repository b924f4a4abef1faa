"""The object mesh that travels with every contact result, and what is derived from it once.

Canonical frame of every ObjectMesh (built-in and generic; user meshes keep their own axes, which
should follow it): metres, real-world size, origin at the bounding-box centre, +y is the object's
natural up (as it stands or is held upright), x is its longest horizontal extent (a bicycle's
length, a couch's width) and +z is its front (the side a person faces or uses: the couch seat,
the TV screen, the laptop's keyboard edge); vehicles and animals head towards +x.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import trimesh

from ivlm_core.geometry import vertex_normals

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class KeepsDerived:
    """Base of immutable meshes: what is derived from one (normals, samples, decimations) is computed once
    per key and kept on it, thread-safe, never in caches keyed by object ids."""

    _derived: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _derived_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False,
                                          compare=False)

    def derived(self, key: Hashable, make: Callable[[], T]) -> T:
        """`make()` computed once per mesh and `key` (e.g. ("decimated", 2000)), then kept on the mesh."""
        with self._derived_lock:
            if key not in self._derived:
                self._derived[key] = make()
            return self._derived[key]


@dataclass(frozen=True, eq=False)
class ObjectMesh(KeepsDerived):
    """A metric object mesh in its canonical frame (see the module docstring); arrays are read-only.

    The registry hands out one ObjectMesh per mesh identity (`mesh_id`: label and size), and it travels
    with every ContactResult, so what is derived from it (normals, samples, decimations) is computed
    once per mesh and kept on it (`derived`), never in caches keyed by object ids.
    """

    mesh_id: str  # "builtin:<label>", "file:<absolute path>" or "generic:<label>:<x>x<y>x<z>mm"
    label: str  # the category label for built-in and matched user meshes, else the requested label
    vertices: np.ndarray  # (V, 3) float32, metres, centred on the bounding-box centre
    faces: np.ndarray  # (F, 3) int64
    size_m: np.ndarray  # (3,) float64 bounding-box extents along x, y, z, metres
    synonyms: tuple[str, ...]  # every name that selects this mesh (label included)

    def to_trimesh(self) -> trimesh.Trimesh:
        """The mesh as a trimesh.Trimesh (a copy; vertex order kept)."""
        return trimesh.Trimesh(self.vertices.copy(), self.faces.copy(), process=False)

    @property
    def vertex_normals(self) -> np.ndarray:
        """(V, 3) float64 unit vertex normals (ivlm_core.geometry.vertex_normals), read-only, made once."""
        return self.derived("vertex_normals", lambda: freeze(vertex_normals(self.vertices, self.faces)))


def freeze(array: np.ndarray) -> np.ndarray:
    """`array`, made read-only (shared by every user of a mesh)."""
    array.flags.writeable = False
    return array
