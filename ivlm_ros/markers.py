"""RViz markers: body mesh coloured by contact probability, object mesh at its pose, contact points,
and the object's grasp points (candidate regions for a robot, away from the person).

The body mesh is decimated once (vertex clustering on the body model's template, at configure) to a
triangle budget, and each object mesh once when first drawn; per frame only the posed positions of the
kept vertices and the per-cluster maximum probability are gathered, so a small contact patch never
disappears in the decimated mesh.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from ivlm_core.body import BodyModel
from ivlm_core.colours import CONTACT_RGB, GRASP_RGB, OBJECT_RGB, contact_rgb
from ivlm_core.contact_report import ContactReport
from ivlm_core.decimation import DecimatedMesh, decimate
from ivlm_core.rate_limit import RateLimit
from ivlm_core.types import ContactResult


def contact_colours(p: np.ndarray, alpha: float) -> np.ndarray:
    """Probabilities (N,) in [0, 1] -> RGBA (N, 4): grey (no contact) to red (contact)."""
    rgb = contact_rgb(p)
    return np.hstack([rgb, np.full((len(rgb), 1), alpha, np.float32)])


def _triangle_marker(header: Any, ns: str, marker_id: int, vertices: np.ndarray, faces: np.ndarray,
                     rgba: np.ndarray) -> Marker:
    m = Marker(header=header, ns=ns, id=marker_id, type=Marker.TRIANGLE_LIST, action=Marker.ADD)
    m.pose.orientation.w = 1.0
    m.scale.x = m.scale.y = m.scale.z = 1.0
    corners = faces.reshape(-1)
    m.points = [Point(x=x, y=y, z=z) for x, y, z in vertices[corners].tolist()]
    m.colors = [ColorRGBA(r=r, g=g, b=b, a=a) for r, g, b, a in rgba[corners].tolist()]
    return m


def body_marker(header: Any, marker_id: int, vertices: np.ndarray, probabilities: np.ndarray,
                mesh: DecimatedMesh, alpha: float = 0.9) -> Marker:
    """Posed body `vertices`: (V, 3) metres, camera frame, coloured by `probabilities`: (V,)."""
    return _triangle_marker(header, "body", marker_id, np.asarray(vertices)[mesh.kept], mesh.faces,
                            contact_colours(mesh.cluster_max(probabilities), alpha))


def object_marker(header: Any, marker_id: int, vertices: np.ndarray, mesh: DecimatedMesh,
                  probabilities: np.ndarray, pose: np.ndarray, scale: float, alpha: float = 0.9) -> Marker:
    """Object mesh `vertices`: (Vo, 3) mesh units, drawn as its decimation `mesh`, placed by `pose` (4, 4)
    and `scale`, in contact colours (plain OBJECT_RGB when `probabilities` is not one per vertex)."""
    kept = np.asarray(vertices, np.float64)[mesh.kept]
    placed = (kept * scale) @ pose[:3, :3].T + pose[:3, 3]
    p = np.asarray(probabilities, np.float32)
    rgb = (contact_colours(mesh.cluster_max(p), alpha) if len(p) == len(vertices)
           else np.tile(np.append(OBJECT_RGB, alpha), (len(kept), 1)))
    return _triangle_marker(header, "object", marker_id, placed, mesh.faces, rgb)


def _sphere_list(header: Any, ns: str, marker_id: int, points: np.ndarray, diameter: float,
                 colour: ColorRGBA) -> Marker:
    m = Marker(header=header, ns=ns, id=marker_id, type=Marker.SPHERE_LIST, action=Marker.ADD)
    m.pose.orientation.w = 1.0
    m.scale.x = m.scale.y = m.scale.z = float(diameter)
    m.color = colour
    m.points = [Point(x=x, y=y, z=z) for x, y, z in np.asarray(points, np.float64).reshape(-1, 3).tolist()]
    return m


def points_marker(header: Any, marker_id: int, points: np.ndarray, diameter: float = 0.02) -> Marker:
    """Contact points (N, 3), metres, as a red SPHERE_LIST."""
    r, g, b = CONTACT_RGB.tolist()
    return _sphere_list(header, "contact_points", marker_id, points, diameter,
                        ColorRGBA(r=r, g=g, b=b, a=1.0))


def grasp_marker(header: Any, marker_id: int, points: np.ndarray, diameter: float = 0.012) -> Marker:
    """Grasp points (N, 3), metres (Contact.grasp_points), as a green SPHERE_LIST in namespace `grasp`."""
    r, g, b = GRASP_RGB.tolist()
    return _sphere_list(header, "grasp", marker_id, points, diameter, ColorRGBA(r=r, g=g, b=b, a=1.0))


def contact_markers(header: Any, reports: Sequence[ContactReport], person_ids: Sequence[int],
                    body_mesh: DecimatedMesh | None,
                    object_mesh: Callable[[ContactResult], tuple[np.ndarray, DecimatedMesh] | None]
                    ) -> MarkerArray:
    """All markers of one frame, drawn from the published reports: a DELETEALL first (stale people,
    objects and grasp points vanish), then per person the body, per placed object its mesh at the
    report's pose, and per pair the body contact points and the grasp points of the ContactArray.

    object_mesh: result -> its object mesh's vertices (Vo, 3) and their decimation, or None when unknown.
    """
    out = MarkerArray(markers=[Marker(header=header, action=Marker.DELETEALL)])
    drawn_people = set()
    for k, (report, pid) in enumerate(zip(reports, person_ids, strict=True)):
        result = report.result
        if result.body_vertices is not None and body_mesh is not None and pid not in drawn_people:
            same_person = [r.result for r, q in zip(reports, person_ids, strict=True) if q == pid]
            p = np.max([np.asarray(r.body_probabilities, np.float32) for r in same_person], axis=0)
            if len(p) == len(body_mesh.cluster) == len(result.body_vertices):
                out.markers.append(body_marker(header, pid, result.body_vertices, p, body_mesh))
                drawn_people.add(pid)
        mesh = object_mesh(result) if report.reconstructed else None
        if mesh is not None:
            out.markers.append(object_marker(header, k, mesh[0], mesh[1], result.object_probabilities,
                                             report.object_pose, report.object_scale))
        if len(report.body_contact_points):
            out.markers.append(points_marker(header, k, report.body_contact_points))
        if len(report.grasp_points):
            out.markers.append(grasp_marker(header, k, report.grasp_points))
    return out


def body_marker_mesh(body: BodyModel, max_triangles: int) -> DecimatedMesh:
    """The backend's body template cut to the marker triangle budget (once, at configure)."""
    return decimate(body.canonical_vertices, body.faces, max_triangles)


class MarkerWorker:
    """Builds and publishes the newest frame's MarkerArray on a thread of its own, off the contact path.

    A frame is taken only when someone subscribes and `rate_hz` allows; object meshes are cut to the
    triangle budget once per mesh (kept on the mesh). on_error(header, exc) reports a failed array.
    """

    def __init__(self, publisher: Any, body_mesh: DecimatedMesh | None, max_triangles: int,
                 on_error: Callable[[Any, Exception], None]) -> None:
        self._pub, self._body_mesh, self._budget = publisher, body_mesh, max_triangles
        self._on_error = on_error
        self._cond = threading.Condition()
        self._job: tuple[Any, ...] | None = None
        self._rate = RateLimit()  # marker_rate_hz, set per offer (a live parameter)
        self._running = True
        self._thread = threading.Thread(target=self._run, name="ivlm_marker_worker", daemon=True)
        self._thread.start()

    def offer(self, header: Any, reports: Sequence[ContactReport], person_ids: Sequence[int],
              rate_hz: float) -> None:
        """Queue the frame (replacing an undrawn one) when markers are due."""
        now = time.monotonic()
        self._rate.rate_hz = rate_hz
        if self._pub.get_subscription_count() == 0 or self._rate.wait_s(now) > 0:
            return
        self._rate.start(now)
        with self._cond:
            self._job = (header, reports, person_ids)
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._running, self._job = False, None
            self._cond.notify_all()
        self._thread.join(timeout=30.0)

    def _object_mesh(self, result: ContactResult) -> tuple[np.ndarray, DecimatedMesh] | None:
        mesh, budget = result.object_mesh, self._budget
        if mesh is None:
            return None
        return mesh.vertices, mesh.derived(("marker", budget),
                                           lambda: decimate(mesh.vertices, mesh.faces, budget))

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._running and self._job is None:
                    self._cond.wait(timeout=0.5)
                if not self._running:
                    return
                (header, reports, person_ids), self._job = self._job, None
            try:
                self._pub.publish(contact_markers(header, reports, person_ids, self._body_mesh,
                                                  self._object_mesh))
            except Exception as exc:  # markers are for people watching; never let them stop the node
                self._on_error(header, RuntimeError(f"markers: {exc}"))
