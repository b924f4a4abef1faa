"""Object label -> metric mesh: user meshes from a folder, built-in procedural shapes, generic boxes.

Every mesh is an ObjectMesh in its canonical frame (ivlm_core.objects.mesh).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import trimesh

from ivlm_core.decimation import decimate
from ivlm_core.objects.categories import (
    CATEGORIES_PATH,
    LabelResolver,
    ObjectCategory,
    normalize_name,
)
from ivlm_core.objects.mesh import ObjectMesh, freeze
from ivlm_core.objects.shapes import build_object, generic_parts
from ivlm_core.types import CameraIntrinsics

LOG = logging.getLogger(__name__)

GENERIC_SIZE_STEP = 0.1  # relative step of generic box sizes (see ObjectRegistry._generic)
# user meshes above this are decimated at load: a 5M-face file took a minute and 2.8 GB to configure and
# listed 143k object vertex ids per message; the built-in shapes have a few thousand faces
MAX_USER_FACES = 20_000
MAX_GENERIC_MESHES = 64
# glTF is metres by specification; trimesh sets `units` for it and for formats that carry units.
MESH_SUFFIXES = tuple(sorted({f".{fmt}" for fmt in trimesh.available_formats()} - {".xyz", ".zip", ".bz2"}))


def normalize_for_render(vertices: np.ndarray) -> np.ndarray:
    """Centre on the vertex mean and divide by the largest bounding-box extent, as InteractVLM does.

    vertices: (V, 3) any unit -> (V, 3) float32, unitless, largest extent 1. This is the object
    normalisation of InteractVLM's `utils/demo_utils.py::normalize_mesh` (facts §3b), applied before
    the four object views are rendered.
    """
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise ValueError(f"vertices must be a non-empty (V, 3) array, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("vertices contain NaN or infinite values")
    centred = v - v.mean(axis=0)
    extent = (centred.max(axis=0) - centred.min(axis=0)).max()
    if extent <= 0:
        raise ValueError("vertices are all at one point; cannot normalise a mesh of zero size")
    return (centred / extent).astype(np.float32)


def _make_mesh(mesh_id: str, label: str, mesh: trimesh.Trimesh, synonyms: tuple[str, ...]) -> ObjectMesh:
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    vertices = vertices - (vertices.min(axis=0) + vertices.max(axis=0)) / 2.0
    return ObjectMesh(
        mesh_id=mesh_id,
        label=label,
        vertices=freeze(vertices.astype(np.float32)),
        faces=freeze(np.asarray(mesh.faces, dtype=np.int64).copy()),
        size_m=freeze(vertices.max(axis=0) - vertices.min(axis=0)),
        synonyms=synonyms,
    )


def load_user_mesh(path: Path) -> tuple[trimesh.Trimesh, str | None]:
    """Load and check one user mesh; returns it and the units its file states (None when unitless).

    Raises ValueError saying what is wrong with the file (unreadable, empty, NaN, non-manifold).
    """
    try:
        raw = trimesh.load(path, force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types for unreadable files
        raise ValueError(f"object mesh {path}: trimesh could not read it ({exc})") from exc
    vertices = np.asarray(getattr(raw, "vertices", np.zeros((0, 3))), dtype=np.float64)
    faces = np.asarray(getattr(raw, "faces", np.zeros((0, 3))), dtype=np.int64)
    if len(vertices) == 0 or len(faces) == 0:
        raise ValueError(f"object mesh {path} is empty ({len(vertices)} vertices, {len(faces)} faces)")
    bad = ~np.all(np.isfinite(vertices), axis=1)
    if bad.any():
        raise ValueError(f"object mesh {path} has {int(bad.sum())} vertices with NaN or infinite coordinates")
    mesh = trimesh.Trimesh(vertices, faces, process=True)  # merges vertices split at UV seams
    if mesh.extents.max() <= 0:
        raise ValueError(f"object mesh {path} has zero size (all {len(vertices)} vertices at one point)")
    flat = ~mesh.nondegenerate_faces(height=1e-9 * mesh.extents.max())
    if flat.all():
        raise ValueError(f"object mesh {path} is degenerate: all {len(flat)} faces have zero area (repeated "
                         "or collinear vertices), so it has no surface; export the object's surface mesh")
    if flat.any():
        LOG.warning("object mesh %s: dropped %d of %d faces with zero area", path, int(flat.sum()), len(flat))
        mesh.update_faces(~flat)
        mesh.remove_unreferenced_vertices()
    _, counts = np.unique(mesh.edges_sorted, axis=0, return_counts=True)
    if np.any(counts > 2):
        raise ValueError(
            f"object mesh {path} is non-manifold: {int(np.sum(counts > 2))} edges are shared by more than "
            "two faces; repair it (e.g. Blender: Select > All by Trait > Non Manifold) and try again"
        )
    return mesh, raw.units


class ObjectRegistry:
    """Gives every detection label a metric mesh: the user's file, else a built-in shape, else a box.

    user_folder: meshes in any format trimesh reads, named after a label or synonym (`mug.obj`,
    `Tennis_Racket.glb`), y up like the built-ins; they are loaded and checked here, once. Meshes
    whose file carries units (glTF, ...) are converted to metres; unitless ones (obj, ply, stl, ...)
    are scaled so their largest extent equals their category's size prior (or taken as metres when
    the label has no category), with a warning. None or "" means built-in shapes only.
    assumed_depth_m: distance used to turn an unknown object's pixel box into metres.
    default_size_m: largest extent of an unknown object when there is no camera.
    max_user_faces: user meshes with more faces are decimated to this budget once, at load (logged).
    """

    def __init__(
        self,
        user_folder: str | None = None,
        assumed_depth_m: float = 2.0,
        default_size_m: float = 0.3,
        max_user_faces: int = MAX_USER_FACES,
    ) -> None:
        if not assumed_depth_m > 0 or not default_size_m > 0:
            raise ValueError(
                f"assumed_depth_m and default_size_m must be > 0, got {assumed_depth_m} and {default_size_m}"
            )
        self.assumed_depth_m = float(assumed_depth_m)
        self.default_size_m = float(default_size_m)
        if int(max_user_faces) < 4:
            raise ValueError(f"max_user_faces must be >= 4, got {max_user_faces}")
        self.max_user_faces = int(max_user_faces)
        self.labels = LabelResolver()
        self.categories = self.labels.categories
        self._lock = threading.Lock()
        self._cache: dict[str, ObjectMesh] = {}
        # generic boxes by mesh id (label and size): two sizes of one label in a frame are two meshes, each
        # made once; the MAX_GENERIC_MESHES most recently used are kept
        self._generic_meshes: OrderedDict[str, ObjectMesh] = OrderedDict()
        self._warned: set[str] = set()
        self._user: dict[str, ObjectMesh] = {}
        # unknown labels get this 1 m cube stretched to their size: no meshing per detection
        self._unit_box = build_object(generic_parts("box", (1.0, 1.0, 1.0)), (1.0, 1.0, 1.0))
        if user_folder:  # None or "" (an unset ROS parameter): built-ins only
            self._load_user_folder(Path(user_folder).expanduser())

    def category(self, label: str) -> ObjectCategory | None:
        """The table row a label names (built-in category or vocabulary noun, see LabelResolver), or None."""
        match = self.labels.resolve(label)
        return None if match is None else match.category

    def get(
        self,
        label: str,
        box_xyxy: np.ndarray | None = None,
        camera: CameraIntrinsics | None = None,
    ) -> ObjectMesh:
        """The mesh for a detection label; never raises for an unknown label.

        Order: user mesh named like the label, user mesh named like a synonym of its category,
        built-in shape (a vocabulary noun's: its class's generic shape at its size prior), generic
        box sized from `box_xyxy` ((4,) pixels) and `camera`.
        """
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"object label must be a non-empty string, got {label!r}")
        key = normalize_name(label)
        if key in self._user:
            return self._user[key]
        category = self.category(label)
        if category is not None:
            for name in category.synonyms:
                user = self._user.get(normalize_name(name))
                if user is not None:
                    return user
            return self._builtin(category)
        return self._generic(label.strip(), box_xyxy, camera)

    def builtin(self, label: str) -> ObjectMesh:
        """The built-in shape of a category (ignoring user meshes); ValueError for an unknown label."""
        category = self.category(label)
        if category is None or not category.builtin:
            raise ValueError(f"no built-in object category named {label!r}; see {CATEGORIES_PATH}")
        return self._builtin(category)

    def _builtin(self, category: ObjectCategory) -> ObjectMesh:
        kind = "builtin" if category.builtin else "vocabulary"
        mesh_id = f"{kind}:{category.label.replace(' ', '_')}"
        with self._lock:
            if mesh_id not in self._cache:
                mesh = build_object(category.parts, category.size_m)
                if category.like is not None:
                    mesh.apply_transform(np.diag([*(category.size_m / mesh.extents), 1.0]))
                self._cache[mesh_id] = _make_mesh(mesh_id, category.label, mesh, category.synonyms)
            return self._cache[mesh_id]

    def _generic(
        self, label: str, box_xyxy: np.ndarray | None, camera: CameraIntrinsics | None
    ) -> ObjectMesh:
        if box_xyxy is None:
            size = np.full(3, self.default_size_m)
        else:
            box = np.asarray(box_xyxy, dtype=np.float64).reshape(-1)
            if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
                raise ValueError(
                    f"box_xyxy must be finite [x0, y0, x1, y1] with x1>x0 and y1>y0, got {box_xyxy!r}"
                )
            w_px, h_px = box[2] - box[0], box[3] - box[1]
            if camera is None:
                w, h = np.array([w_px, h_px]) * self.default_size_m / max(w_px, h_px)
            else:  # a guess from an assumed depth, kept in steps of GENERIC_SIZE_STEP: a box that jitters
                # from frame to frame stays one mesh (what consumers derive from it is made once)
                w, h = w_px / camera.fx * self.assumed_depth_m, h_px / camera.fy * self.assumed_depth_m
                step = np.log1p(GENERIC_SIZE_STEP)
                w, h = np.exp(np.round(np.log([w, h]) / step) * step)
            size = np.array([w, h, min(w, h)])
        # the size is part of the identity: a box of another size is another mesh
        mesh_id = f"generic:{label}:{'x'.join(f'{v * 1e3:.0f}' for v in size)}mm"
        with self._lock:
            if label not in self._warned:
                self._warned.add(label)
                LOG.warning(
                    "no mesh for object label %r (not a built-in category or synonym, no user mesh): "
                    "using a generic box of %.2f x %.2f x %.2f m; put a mesh named after the label in the "
                    "user mesh folder for real contact regions",
                    label,
                    *size,
                )
            cached = self._generic_meshes.get(mesh_id)
            if cached is not None:
                self._generic_meshes.move_to_end(mesh_id)
                return cached
            mesh = trimesh.Trimesh(self._unit_box.vertices * size, self._unit_box.faces, process=False)
            self._generic_meshes[mesh_id] = cached = _make_mesh(mesh_id, label, mesh, (label,))
            while len(self._generic_meshes) > MAX_GENERIC_MESHES:  # least recently used first
                self._generic_meshes.popitem(last=False)
            return cached

    def _load_user_folder(self, folder: Path) -> None:
        if not folder.is_dir():
            raise ValueError(f"user object mesh folder {folder} does not exist or is not a folder")
        sources: dict[str, tuple[Path, str]] = {}
        for path in sorted(folder.iterdir()):
            suffix = next((s for s in MESH_SUFFIXES if path.name.lower().endswith(s)), None)
            if suffix is None or not path.is_file():
                continue
            stem = path.name[: -len(suffix)]
            key = normalize_name(stem)
            if key in sources:
                raise ValueError(
                    f"user object meshes {sources[key][0].name} and {path.name} both match label {stem!r}; "
                    "keep one of them"
                )
            sources[key] = (path, stem)
        for key, (path, stem) in sources.items():
            mesh, units = load_user_mesh(path)
            if len(mesh.faces) > self.max_user_faces:
                full = len(mesh.faces)
                cut = decimate(mesh.vertices, mesh.faces, self.max_user_faces)  # vertex clustering
                mesh = trimesh.Trimesh(np.asarray(mesh.vertices)[cut.kept], cut.faces, process=False)
                LOG.warning("object mesh %s has %d faces: decimated once to %d (max_user_faces %d), so "
                            "placement and messages stay fast", path, full, len(mesh.faces),
                            self.max_user_faces)
            category = self.category(key)
            label = category.label if category is not None else stem
            if units is not None:
                mesh.apply_scale(trimesh.units.unit_conversion(units, "meters"))
            elif category is not None:
                scale = category.size_m.max() / mesh.extents.max()
                mesh.apply_scale(scale)
                LOG.warning(
                    "object mesh %s has no units: scaled by %.4g so its largest extent is %.2f m, the size "
                    "prior of %r (export as glTF/GLB, which is in metres, to keep its own size)",
                    path,
                    scale,
                    category.size_m.max(),
                    category.label,
                )
            else:
                LOG.warning("object mesh %s has no units and no size prior: reading it as metres", path)
            resolved = str(path.resolve())
            synonyms = category.synonyms if category is not None else (label,)
            self._user[key] = _make_mesh(f"file:{resolved}", label, mesh, synonyms)
        LOG.info("loaded %d user object meshes from %s", len(self._user), folder)
