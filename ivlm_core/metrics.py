"""Contact metrics computed exactly as InteractVLM and DECO compute them (their official repositories).

- Vertex precision / recall / F1: a vertex is predicted in contact when its probability is
  >= threshold (0.5) and is in the ground truth when its label is > 0. `empty_rule="interactvlm"`
  uses InteractVLM's 1e-10 epsilons (`utils/eval_utils.py::get_h_contact_metrics`);
  `empty_rule="deco"` uses DECO's special cases (`utils/metrics.py::precision_recall_f1score`:
  no prediction -> P=1, R=0, F1=0; no ground truth -> P=0, R=1, F1=0). Batches are averaged per
  sample, as both do.
- Geodesic error (DECO `det_error_metric`, InteractVLM `get_h_geo_metric` with its arguments in
  the right order): `fp_cm` is the mean over predicted vertices of the geodesic distance to the
  nearest ground-truth vertex (DECO's reported number), `fn_cm` the mean over ground-truth
  vertices of the distance to the nearest predicted vertex. With an empty set both use every
  vertex instead, so an empty ground truth gives fp_cm = 0 and an empty prediction gives fn_cm = 0.
  To compare with InteractVLM's published "Geo": its `evaluate.py` swaps the arguments, so it
  reports a GT -> prediction distance, i.e. fn_cm (with vertices at probability exactly 1.0 as the
  prediction).
  Distances are shortest paths on the mesh edge graph (scipy's multi-source Dijkstra with
  `min_only=True`: one pass per set, no V x V matrix), in the mesh's units times 100 (cm for meshes
  in metres). The original reads a precomputed SMPL geodesic matrix instead; see GeodesicGraph for
  how close the graph distances come to true surface geodesics.
- Body-part precision / recall / F1 on named part sets (e.g. `left_hand`), with or without the
  left/right distinction, per pair or pooled over many pairs (the real-photo benchmark).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import trimesh
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from ivlm_core.geometry import validate_mesh

EPS = 1e-10  # InteractVLM's epsilon in precision, recall and F1
FLAT_FOLD_RAD = np.radians(30.0)  # face pairs folded less than this get a cross-face shortcut edge
EmptyRule = Literal["interactvlm", "deco"]


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1, each in [0, 1]."""

    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class GeodesicError:
    """DECO geodesic errors in cm: fp_cm (predicted -> nearest GT, the reported one), fn_cm (GT -> pred)."""

    fp_cm: float
    fn_cm: float


def _as_batch(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.shape != g.shape or p.ndim not in (1, 2) or p.shape[-1] == 0:
        raise ValueError(
            f"pred and gt must have the same non-empty shape (V,) or (N, V), got {p.shape} and {g.shape}"
        )
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(g))):
        raise ValueError("pred and gt must not contain NaN or infinite values")
    return np.atleast_2d(p), np.atleast_2d(g)


def _prf_from_counts(tp: float, n_pred: float, n_gt: float, empty_rule: EmptyRule) -> PRF:
    if empty_rule == "interactvlm":
        precision = tp / (n_pred + EPS)
        recall = tp / (n_gt + EPS)
        return PRF(precision, recall, 2 * precision * recall / (precision + recall + EPS))
    if empty_rule == "deco":
        if n_pred == 0:
            return PRF(1.0, 0.0, 0.0)
        if n_gt == 0:
            return PRF(0.0, 1.0, 0.0)
        precision, recall = tp / n_pred, tp / n_gt
        if precision + recall <= EPS:
            return PRF(0.0, 0.0, 0.0)
        return PRF(precision, recall, 2 * precision * recall / (precision + recall))
    raise ValueError(f"empty_rule must be 'interactvlm' or 'deco', got {empty_rule!r}")


def contact_prf(
    pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5, empty_rule: EmptyRule = "interactvlm"
) -> PRF:
    """Vertex-level precision, recall, F1 averaged over samples.

    pred: (V,) or (N, V) contact probabilities; gt: same shape, contact where > 0.
    """
    p, g = _as_batch(pred, gt)
    scores = []
    for pb, gb in zip(p >= threshold, g > 0, strict=True):
        scores.append(_prf_from_counts(float(np.sum(pb & gb)), float(pb.sum()), float(gb.sum()), empty_rule))
    table = np.array([(s.precision, s.recall, s.f1) for s in scores])
    return PRF(*(float(x) for x in table.mean(axis=0)))


class GeodesicGraph:
    """The edge graph of a triangle mesh, built once, for multi-source geodesic distances.

    vertices: (V, 3) float, metres; faces: (F, 3) int. Edges weigh their Euclidean length. Besides
    the triangle edges, each pair of neighbouring faces that is nearly flat (folded by less than
    FLAT_FOLD_RAD) adds the edge between its two unshared corners, which lets paths cut across
    faces: on a sphere this brings edge-graph distances from up to ~6 % too long to within ~1 %
    of the true geodesic, while sharp creases (a box's edges) keep the exact surface path. Meshes
    made of several disconnected pieces (object recipes are concatenations of parts) get one extra
    edge per piece, between the closest vertices of that piece and the nearest other piece (a
    minimum spanning tree over pieces), so every distance is finite; for touching or overlapping
    parts such an edge is about zero long.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray) -> None:
        v, f = validate_mesh(vertices, faces)
        mesh = trimesh.Trimesh(v, f, process=False)
        flat = mesh.face_adjacency_angles < FLAT_FOLD_RAD
        edges = np.vstack([mesh.edges_unique, mesh.face_adjacency_unshared[flat]])
        edges = edges[edges[:, 0] != edges[:, 1]]
        edges = np.vstack([edges, self._bridges(v, edges)])
        lengths = np.linalg.norm(v[edges[:, 0]] - v[edges[:, 1]], axis=1)
        # zero-length edges (coincident vertices) would vanish from a sparse matrix; keep them tiny
        lengths = np.maximum(lengths, 1e-12)
        n = len(v)
        self.num_vertices = n
        self.graph: csr_matrix = coo_matrix((lengths, (edges[:, 0], edges[:, 1])), shape=(n, n)).tocsr()

    @staticmethod
    def _bridges(vertices: np.ndarray, edges: np.ndarray) -> np.ndarray:
        """(B, 2) extra edges joining disconnected pieces along a minimum spanning tree of pieces."""
        n = len(vertices)
        adjacency = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
        _, labels = connected_components(adjacency, directed=False)
        bridges = []
        merged = labels.copy()
        while len(np.unique(merged)) > 1:
            # join the piece holding vertex 0 to its nearest other piece (Prim's algorithm)
            inside = merged == merged[0]
            tree = cKDTree(vertices[~inside])
            distance, nearest = tree.query(vertices[inside])
            best = int(np.argmin(distance))
            a = int(np.flatnonzero(inside)[best])
            b = int(np.flatnonzero(~inside)[nearest[best]])
            bridges.append((a, b))
            merged[merged == merged[b]] = merged[0]
        return np.asarray(bridges, dtype=edges.dtype).reshape(-1, 2)

    def distance_to(self, sources: np.ndarray) -> np.ndarray:
        """(V,) distance from every vertex to the nearest vertex of `sources` (ids or (V,) bool mask)."""
        ids = np.asarray(sources)
        if ids.dtype == bool:
            if ids.shape != (self.num_vertices,):
                raise ValueError(f"source mask must have shape ({self.num_vertices},), got {ids.shape}")
            ids = np.flatnonzero(ids)
        if ids.size == 0:
            raise ValueError("need at least one source vertex")
        return dijkstra(self.graph, directed=False, indices=ids, min_only=True)


def geodesic_error_cm(
    pred: np.ndarray, gt: np.ndarray, graph: GeodesicGraph, threshold: float = 0.5
) -> GeodesicError:
    """DECO's geodesic errors (see the module docstring), averaged over samples.

    pred: (V,) or (N, V) probabilities, contact where >= threshold; gt: same shape, contact where > 0;
    graph: the mesh these vertices belong to, in metres.
    """
    p, g = _as_batch(pred, gt)
    if p.shape[1] != graph.num_vertices:
        raise ValueError(f"pred has {p.shape[1]} vertices but the mesh has {graph.num_vertices}")
    fp, fn = [], []
    for pb, gb in zip(p >= threshold, g > 0, strict=True):
        if not gb.any():
            fp.append(0.0)  # every vertex is its own nearest "GT" vertex
        else:
            to_gt = graph.distance_to(gb)
            fp.append(float(to_gt[pb].mean() if pb.any() else to_gt.mean()))
        if not pb.any():
            fn.append(0.0)
        else:
            to_pred = graph.distance_to(pb)
            fn.append(float(to_pred[gb].mean() if gb.any() else to_pred.mean()))
    return GeodesicError(fp_cm=100.0 * float(np.mean(fp)), fn_cm=100.0 * float(np.mean(fn)))


def normalize_part(name: str, sided: bool = True) -> str:
    """`"Left Hand"`, `"left-hand"`, `"leftHand"` -> `"left_hand"`; with sided=False -> `"hand"`."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    snake = re.sub(r"[\s\-]+", "_", snake).lower()
    if not sided:
        snake = re.sub(r"^(left|right)_", "", snake)
    return snake


def _part_set(parts: Collection[str], sided: bool) -> set[str]:
    if isinstance(parts, str):
        raise ValueError(f"parts must be a collection of names, not the string {parts!r}")
    return {normalize_part(p, sided) for p in parts}


def part_prf(
    pred_parts: Collection[str],
    gt_parts: Collection[str],
    sided: bool = True,
    empty_rule: EmptyRule = "interactvlm",
) -> PRF:
    """Precision, recall, F1 of one pair's predicted body-part names against the labelled ones.

    sided=False compares `hand` with `hand` whatever the side (left_hand matches right_hand).
    """
    pred, gt = _part_set(pred_parts, sided), _part_set(gt_parts, sided)
    return _prf_from_counts(len(pred & gt), len(pred), len(gt), empty_rule)


def pooled_part_prf(pairs: Iterable[tuple[Collection[str], Collection[str]]], sided: bool = True) -> PRF:
    """Precision, recall, F1 over the part names of many (pred_parts, gt_parts) pairs pooled together.

    Pooling (micro-averaging) keeps pairs with no contact from counting as perfect or as failures
    on their own: they only add predicted parts (false positives) or miss labelled ones.
    """
    tp = n_pred = n_gt = 0
    for pred_parts, gt_parts in pairs:
        pred, gt = _part_set(pred_parts, sided), _part_set(gt_parts, sided)
        tp += len(pred & gt)
        n_pred += len(pred)
        n_gt += len(gt)
    return _prf_from_counts(tp, n_pred, n_gt, "interactvlm")


def detection_prf(pred_contact: np.ndarray, gt_contact: np.ndarray) -> PRF:
    """Precision, recall, F1 of pair-level contact / no-contact decisions ((P,) bool each), pooled."""
    p = np.asarray(pred_contact, dtype=bool)
    g = np.asarray(gt_contact, dtype=bool)
    if p.shape != g.shape or p.ndim != 1:
        raise ValueError(
            f"pred_contact and gt_contact must be (P,) arrays of one shape, got {p.shape}, {g.shape}"
        )
    return _prf_from_counts(float(np.sum(p & g)), float(p.sum()), float(g.sum()), "interactvlm")


@dataclass(frozen=True)
class LabelledPair:
    """One labelled person-object pair of a photo set and the parts a backend predicted for it.

    kind: the label's kind (object, scene, open_vocabulary, no_contact); original: the pair is in
    the set the figures were first reported on (so that new photos never hide a regression there).
    """

    pred: Collection[str]
    gt: Collection[str]
    contact: bool
    kind: str
    original: bool = False


def labelled_pairs_summary(pairs: Iterable[LabelledPair]) -> dict:
    """Part-level figures of a labelled photo set, overall, on the original pairs and per kind.

    Keys: f1, precision, recall (pooled over the contact pairs, left/right-agnostic), f1_strict
    (with laterality), no_contact_accuracy (share of contact-false pairs predicted empty),
    f1_original and no_contact_accuracy_original (the original pairs only), and by_kind /
    by_kind_added: {kind: {pairs, f1}} over all pairs / over the pairs that are not original
    (no_contact kinds report `accuracy` instead of f1). A figure with no pair to measure is NaN.
    """
    pairs = list(pairs)

    def figures(group: list[LabelledPair]) -> dict:
        positives = [(p.pred, p.gt) for p in group if p.contact]
        negatives = [p for p in group if not p.contact]
        nan = float("nan")
        return {
            "pairs": len(group),
            "f1": round(pooled_part_prf(positives, sided=False).f1, 4) if positives else nan,
            "accuracy": round(float(np.mean([not p.pred for p in negatives])), 4) if negatives else nan,
        }

    def by_kind(group: list[LabelledPair]) -> dict:
        out = {}
        for kind in sorted({p.kind for p in group}):
            fig = figures([p for p in group if p.kind == kind])
            key = "accuracy" if kind == "no_contact" else "f1"
            out[kind] = {"pairs": fig["pairs"], key: fig[key]}
        return out

    positives = [(p.pred, p.gt) for p in pairs if p.contact]
    loose = pooled_part_prf(positives, sided=False)
    everything, original = figures(pairs), figures([p for p in pairs if p.original])
    return {
        "pairs": len(pairs),
        "contact_pairs": len(positives),
        "no_contact_pairs": len(pairs) - len(positives),
        "precision": round(loose.precision, 4),
        "recall": round(loose.recall, 4),
        "f1": round(loose.f1, 4),
        "f1_strict": round(pooled_part_prf(positives, sided=True).f1, 4),
        "no_contact_accuracy": everything["accuracy"],
        "f1_original": original["f1"],
        "no_contact_accuracy_original": original["accuracy"],
        "by_kind": by_kind(pairs),
        "by_kind_added": by_kind([p for p in pairs if not p.original]),
    }
