"""Lifecycle node: camera image + detections in, ContactArray + RViz markers + diagnostics out.

configure: read parameters, load the backend (models) and the marker meshes, create publishers.
activate: subscribe and start the worker. deactivate: unsubscribe, stop the worker, stop publishing.
cleanup: free the backend (and GPU memory).

Callbacks only store the newest message; one worker thread pairs the newest image with the
detections of the same stamp, runs the backend and publishes, so a slow backend never builds a queue
(replaced images are counted as dropped).
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from visualization_msgs.msg import MarkerArray

from ivlm_core.backends import backend_options, create_backend
from ivlm_core.backends.base import PERSON_LABEL
from ivlm_core.contact_report import ReportConfig, contact_report
from ivlm_core.diagnostics import OK, WARN, FrameStats
from ivlm_core.labels import LabelPolicy
from ivlm_core.pairing import FramePairer
from ivlm_core.settings import NOT_LIVE, SETTINGS, Setting, backend_kwargs, check_settings, unknown_names
from ivlm_core.tracking import ContactTracker
from ivlm_core.types import CameraIntrinsics, ContactResult, Detection
from ivlm_ros import conversions, markers
from ivlm_ros.msg import ContactArray
from ivlm_ros.spin import spin_until_shutdown
from ivlm_ros.srv import EstimateContact
from ivlm_ros.transport import QOS_CHOICES, Inputs

# every setting of ivlm_core.settings plus the transport's; each is also in config/contact.yaml
PARAMETERS: dict[str, Setting] = {
    **SETTINGS,
    "image_qos": Setting("auto", "QoS of the inputs: auto = reliable when every publisher of the topic is, "
                         "else best effort (re-checked as publishers come and go); or force reliable / "
                         "best_effort", QOS_CHOICES),
    "max_image_pixels": Setting(conversions.MAX_IMAGE_PIXELS, "larger images are refused before decoding "
                                "(width x height; the default is above 8K UHD)", (1, 150_000_000), live=True),
}


class ContactNode(LifecycleNode):
    """The ivlm_ros contact node (see the module docstring; topics and parameters in README)."""

    def __init__(self, node_name: str = "contact_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, spec in PARAMETERS.items():  # typed and ranged by our checks: a bad value fails configure
            self.declare_parameter(name, spec.default, ParameterDescriptor(
                name=name, description=spec.describe(), dynamic_typing=True))
        # rclpy keeps the params file's entries for this node in _parameter_overrides (no public accessor)
        overrides = set(getattr(self, "_parameter_overrides", {})) - set(self._parameters)
        self._parameter_warnings = unknown_names(overrides, PARAMETERS)  # also in diagnostics
        for warning in self._parameter_warnings:
            self.get_logger().warning(warning)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._backend = None
        self._lock = threading.Condition()
        self._pairer = FramePairer()
        self._camera_info: CameraInfo | None = None
        self._worker: threading.Thread | None = None
        self._marker_worker: threading.Thread | None = None
        self._running = False
        self._inputs: Inputs | None = None
        self._backend_lock = threading.Lock()  # the worker's frame or one ~/estimate request at a time
        self.create_service(EstimateContact, "~/estimate", self._on_estimate)
        self._camera_warnings: list[str] = []
        self._pubs: dict[str, Any] = {}
        self._diag_timer = None
        self._stats = FrameStats()
        self._warned: set[str] = set()  # input problems logged once

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._read_parameters()
            p = self.p
            self._report = ReportConfig(p["contact_threshold"], p["grasp_clearance"])
            self._tracker = ContactTracker(p["track_min_iou"], p["track_max_missed"], p["smoothing_alpha"])
            self._backend = self._create_backend()
            self._body_mesh = self._load_body_mesh()
            self._labels = LabelPolicy(self._backend.objects or self._object_registry(),
                                       self.p["unknown_label_policy"])
        except Exception as exc:  # any load failure: stay unconfigured and say why
            self.get_logger().error(f"configure failed: {exc}")
            self._stats.last_error = f"configure: {exc}"
            self._free_backend()
            return TransitionCallbackReturn.FAILURE
        self._pubs = {
            "contacts": self.create_lifecycle_publisher(ContactArray, "contacts", 10),
            "markers": self.create_lifecycle_publisher(MarkerArray, "contact_markers", 1),
            "diagnostics": self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10),
        }
        if conversions.vision_msgs_installed():  # placed objects also as the standard message
            from vision_msgs.msg import Detection3DArray

            self._pubs["objects_3d"] = self.create_lifecycle_publisher(Detection3DArray, "objects_3d", 10)
        self._diag_timer = self.create_timer(self.p["diagnostics_period_s"], self._publish_diagnostics)
        self._stats = FrameStats()
        self.get_logger().info(f"configured: backend '{self.p['backend']}' on {self.p['device']}")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._inputs = Inputs(self, self.p["image_qos"])
        if self.p["use_compressed"]:
            self._inputs.subscribe(CompressedImage, "image/compressed", self._on_image)
        else:
            self._inputs.subscribe(Image, "image", self._on_image)
        self._inputs.subscribe(CameraInfo, "camera_info", self._on_camera_info)
        if self.p["use_detections"]:
            msg_type, self._convert_detections, _ = conversions.detection_messages(self.p["detections_type"])
            self._inputs.subscribe(msg_type, "detections", self._on_detections, depth=10)
        self._last_markers = self._last_start = 0.0
        self._pairer = FramePairer(self.p["pairing_tolerance_s"], self.p["detection_wait_s"],
                                   use_detections=self.p["use_detections"])
        self._running = True
        self._marker_job = None
        self._worker = threading.Thread(target=self._work, name="ivlm_contact_worker", daemon=True)
        self._marker_worker = threading.Thread(target=self._draw, name="ivlm_marker_worker", daemon=True)
        self._worker.start()
        self._marker_worker.start()
        self._stats.message = "active, waiting for images"
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_work()
        self._stats.message = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_shutdown(state)

    def _release(self) -> None:
        """Undo configure (cleanup, shutdown): workers, inputs, publishers, timer, backend, meshes."""
        self._stop_work()
        self._release_publishers()
        self._free_backend()
        self._body_mesh = self._labels = None

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_work()
        self._free_backend()
        return TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------------ set-up helpers
    def _read_parameters(self) -> None:
        self.p = check_settings(PARAMETERS, {name: self.get_parameter(name).value for name in PARAMETERS})

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Live settings are checked and applied at once; the others change only while unconfigured."""
        configured = self._state_machine.current_state[1] != "unconfigured"
        try:
            changed = {}
            for param in params:
                spec = PARAMETERS.get(param.name)
                if spec is not None and configured and not spec.live:
                    raise ValueError(f"parameter {param.name} {NOT_LIVE}")
                if spec is not None:
                    changed[param.name] = spec.check(param.name, param.value)
            if configured and changed:
                p = {**self.p, **changed}
                self._report = ReportConfig(p["contact_threshold"], p["grasp_clearance"])
                self._labels.policy, self.p = p["unknown_label_policy"], p
                with self._lock:
                    self._tracker.configure(p["track_min_iou"], p["track_max_missed"], p["smoothing_alpha"])
                    self._pairer.tolerance_s, self._pairer.max_wait_s = (p["pairing_tolerance_s"],
                                                                         p["detection_wait_s"])
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _create_backend(self) -> Any:
        options = backend_kwargs(self.p, backend_options(self.p["backend"]))
        t0 = time.monotonic()
        backend = create_backend(self.p["backend"], **options)
        self.get_logger().info(f"backend '{self.p['backend']}' loaded in {time.monotonic() - t0:.1f} s")
        return backend

    def _load_body_mesh(self) -> markers.DecimatedMesh | None:
        if not self.p["publish_markers"]:
            return None
        from ivlm_core.body import load_body_model

        model = load_body_model(self.p["body_model"], self.p["body_model_path"] or None, self.p["device"])
        return markers.decimate(model.canonical_vertices, model.faces, self.p["marker_max_triangles"])

    def _object_registry(self) -> Any:
        """Object meshes for the label policy when the backend has no registry of its own."""
        from ivlm_core.objects import ObjectRegistry

        return ObjectRegistry(user_folder=self.p["object_mesh_folder"] or None)

    def _stop_work(self) -> None:
        if self._inputs is not None:
            self._inputs.destroy()
            self._inputs = None
        with self._lock:
            self._running = False
            self._pairer.clear()
            self._marker_job = None
            self._lock.notify_all()
        for worker in (self._worker, self._marker_worker):
            if worker is not None:
                worker.join(timeout=30.0)
        self._worker = self._marker_worker = None

    def _release_publishers(self) -> None:
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}

    def _free_backend(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
            import sys

            torch = sys.modules.get("torch")  # only if a backend imported it
            if torch is not None and torch.cuda.is_available():
                torch.cuda.empty_cache()

    # ------------------------------------------------------------------ callbacks: store only
    def _on_image(self, msg: Image | CompressedImage) -> None:
        with self._lock:
            self._stats.received += 1
            self._stats.dropped += self._pairer.add_image(msg, _stamp_ns(msg.header), time.monotonic())
            self._lock.notify_all()

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _on_detections(self, msg: Any) -> None:
        stamp, parsed = _stamp_ns(msg.header), self._convert_detections(msg, self.p["class_names"])
        with self._lock:
            self._pairer.add_detections(stamp, (parsed.detections, parsed.problems), time.monotonic())
            self._lock.notify_all()

    # ------------------------------------------------------------------ worker
    def _next_frame(self) -> tuple[Any, tuple[list[Detection], str] | None] | None:
        """Block until a frame is due (rate limit) and paired with its detections; None on stop.

        The newest image whose detections have arrived wins; older images are dropped. Images wait
        for detections (a detector runs behind the camera; the wait adapts to its measured delay,
        within `detection_wait_s`), then are skipped, not processed without them: an empty ContactArray
        would tell a planner "no contact" when the truth is "unknown". Diagnostics say why.
        """
        with self._lock:
            while self._running:
                period = 1.0 / self.p["max_rate_hz"] if self.p["max_rate_hz"] > 0 else 0.0
                wait_rate = self._last_start + period - time.monotonic()
                if not len(self._pairer) or wait_rate > 0:
                    self._lock.wait(timeout=max(wait_rate, 0.0) or 0.1)
                    continue
                taken = self._pairer.take(time.monotonic())
                self._stats.dropped += taken.dropped
                if taken.unpaired:
                    self._stats.unpaired += taken.unpaired
                    self._stats.set(WARN, self._unpaired_message())
                if taken.frame is not None:
                    return taken.frame.item, taken.detections
                self._lock.wait(timeout=taken.retry_in_s or 0.1)
        return None

    def _unpaired_message(self) -> str:
        pairer, delay = self._pairer, self._pairer.delay_s
        measured = ("no detections matched an image yet" if delay is None
                    else f"detections arrive {delay:.2f} s after their images")
        return (f"frame skipped: no detections within {pairer.wait_s:.2f} s of it ({measured}; the "
                f"wait adapts up to detection_wait_s = {pairer.max_wait_s} s; is the detector running and "
                f"remapped to 'detections'?)")

    def _work(self) -> None:
        while True:
            item = self._next_frame()
            if item is None:
                return
            self._last_start = time.monotonic()
            try:
                with self._backend_lock:
                    self._process(*item)
            except Exception as exc:  # a bad frame must never take the node down
                self._report_error(item[0].header, exc)

    def _report_error(self, header: Any, exc: Exception) -> None:
        stamp = _stamp_ns(header) * 1e-9
        self._stats.error(f"frame {stamp:.3f}: {exc}")
        if isinstance(exc, ValueError):
            self.get_logger().warning(self._stats.last_error, throttle_duration_sec=5.0)
        else:
            self.get_logger().error(f"{self._stats.last_error}\n{traceback.format_exc()}",
                                    throttle_duration_sec=5.0)
        self._publish_diagnostics()

    def _camera(self, width: int, height: int, info: CameraInfo | None) -> CameraIntrinsics:
        if info is None:
            return CameraIntrinsics.from_fov(width, height, self.p["default_fov_deg"])
        camera = conversions.camera_from_info(info)
        self._camera_warnings = [] if camera is not None else [
            f"camera_info K is all zeros (an uncalibrated driver): using default_fov_deg = "
            f"{self.p['default_fov_deg']} deg; calibrate the camera for metric 3D"]
        if camera is None:
            return CameraIntrinsics.from_fov(width, height, self.p["default_fov_deg"])
        if (camera.width, camera.height) != (width, height):
            raise ValueError(f"camera_info is {camera.width}x{camera.height} but the image is "
                             f"{width}x{height}; publish the CameraInfo of this image stream")
        return camera

    def _process(self, msg: Image | CompressedImage, paired: tuple[list[Detection], str] | None,
                 request: CameraInfo | None = None) -> ContactArray:
        """One frame through the backend; published, or only returned for an ~/estimate `request` (its
        CameraInfo, width 0 = the stream's): then no tracking, person ids are the frame's person indices."""
        t0 = time.monotonic()
        header = msg.header
        if isinstance(msg, CompressedImage):
            rgb = conversions.compressed_to_rgb(msg, self.p["max_image_pixels"])
        else:
            rgb = conversions.image_to_rgb(msg, self.p["max_image_pixels"])
        info = self._camera_info if request is None or not request.width else request
        camera = self._camera(rgb.shape[1], rgb.shape[0], info)
        detections, problems = [], []
        if paired is not None:
            detections, problems = paired[0], list(paired[1])
            detections, unknown = self._labels.apply(detections)
            if unknown:
                problems.append(f"unknown object label(s) {unknown}: no size prior or mesh; add "
                                f"<label>.obj to object_mesh_folder, map ids with class_names, or set "
                                f"unknown_label_policy to 'generic'")
            if problems and all(d.label == PERSON_LABEL for d in detections):
                raise ValueError("; ".join(problems) + " (no object left: frame not published, an empty "
                                 "ContactArray would read as 'no contact')")
        t1 = time.monotonic()
        results = self._backend.estimate(rgb, detections, camera)
        t2 = time.monotonic()
        if request is not None:
            person_ids = [r.person_index for r in results]
        else:
            person_ids = self._tracker.update(results, detections)
        reports = [contact_report(r, self._report) for r in results]
        contacts = [conversions.contact_to_msg(r, pid) for r, pid in zip(reports, person_ids, strict=True)]
        out = ContactArray(header=header, contacts=contacts)
        if request is not None:
            return out
        self._pubs["contacts"].publish(out)
        if "objects_3d" in self._pubs:
            meshes = [None if r.object_mesh is None else r.object_mesh.vertices for r in results]
            objects = conversions.placed_objects_to_vision_msgs(header, contacts, meshes)
            self._pubs["objects_3d"].publish(objects)
        t3 = time.monotonic()
        self._record(header, t3, (t1 - t0 + t3 - t2) * 1e3, (t2 - t1) * 1e3, problems, results)
        grasp = [r.grasp_points for r in reports]
        self._queue_markers(header, results, person_ids, grasp)
        return out

    def _on_estimate(self, request: EstimateContact.Request, response: EstimateContact.Response
                     ) -> EstimateContact.Response:
        """~/estimate: the request's image through the backend between two streamed frames (it waits for
        at most the frame in progress; the stream then waits for this one)."""
        if not self._running:
            response.message = (f"the node is {self._state_machine.current_state[1]}; ~/estimate answers "
                                f"only while it is active (configure and activate it)")
            return response
        try:
            parsed = conversions.detections_from_ivlm_msg(request, self.p["class_names"])
            with self._backend_lock:
                response.contacts = self._process(request.image, (parsed.detections, parsed.problems),
                                                  request.camera_info)
            response.success, response.message = True, f"{len(response.contacts.contacts)} pair(s)"
        except Exception as exc:  # answered, never raised into the executor
            response.message = f"estimate failed: {exc}"
        return response

    def _record(self, header: Any, done: float, overhead_ms: float, backend_ms: float, problems: list[str],
                results: list[ContactResult]) -> None:
        s, stamp = self._stats, _stamp_ns(header)
        s.record(done, self.get_clock().now().nanoseconds, stamp, overhead_ms, backend_ms)
        for problem, text in (("stamp", "images are stamped 0: latency cannot be measured; stamp them with "
                               "the capture time"),
                              ("frame_id", "images have an empty header.frame_id: 3D points are published in "
                               "an unnamed frame; set the camera driver's frame_id")):
            if problem not in self._warned and (stamp == 0 if problem == "stamp" else not header.frame_id):
                self._warned.add(problem)
                self.get_logger().warning(text)
        reasons = sorted({r.reason for r in results if r.reason})
        if problems:
            s.error(f"frame {stamp * 1e-9:.3f}: {'; '.join(problems)}")
            if self.p["unknown_label_policy"] != "error":
                s.set(WARN, "; ".join(problems))
            self._publish_diagnostics()
        else:
            s.set(OK, f"ok: {len(results)} pair(s)" + (f" ({'; '.join(reasons)})" if reasons else ""))

    def _queue_markers(self, header: Any, results: list[ContactResult], person_ids: list[int],
                       grasp: list[np.ndarray]) -> None:
        """Hand the frame to the marker thread when markers are due (throttled, only with subscribers)."""
        now = time.monotonic()
        if (not self.p["publish_markers"] or self._pubs["markers"].get_subscription_count() == 0
                or now - self._last_markers < 1.0 / self.p["marker_rate_hz"]):
            return
        self._last_markers = now
        with self._lock:
            self._marker_job = (header, results, person_ids, grasp)
            self._lock.notify_all()

    def _draw(self) -> None:
        """Marker thread: builds and publishes the newest queued MarkerArray, off the contact path."""
        while True:
            with self._lock:
                while self._running and self._marker_job is None:
                    self._lock.wait(timeout=0.5)
                if not self._running:
                    return
                (header, results, person_ids, grasp), self._marker_job = self._marker_job, None

            def object_mesh(result: ContactResult) -> tuple[np.ndarray, Any] | None:
                mesh, budget = result.object_mesh, self.p["marker_max_triangles"]
                if mesh is None:
                    return None

                def cut() -> markers.DecimatedMesh:
                    return markers.decimate(mesh.vertices, mesh.faces, budget)

                return mesh.vertices, mesh.derived(("marker", budget), cut)

            try:
                self._pubs["markers"].publish(markers.contact_markers(
                    header, results, person_ids, self._report.contact_threshold, self._body_mesh, object_mesh,
                    grasp))
            except Exception as exc:  # markers are for people watching; never let them stop the node
                self._report_error(header, RuntimeError(f"markers: {exc}"))

    def _publish_diagnostics(self) -> None:
        pub = self._pubs.get("diagnostics")
        if pub is None:
            return
        s = self._stats
        delay = self._pairer.delay_s
        values = {"backend": self.p["backend"], "device": self.p["device"], **s.values(),
                  "detection_delay_ms": "" if delay is None else f"{delay * 1e3:.0f}",
                  "detection_wait_s": f"{self._pairer.wait_s:.2f}",
                  "parameter_warnings": "; ".join(self._parameter_warnings)}
        inputs, warnings = self._inputs.status() if self._inputs is not None else ({}, [])
        values.update(inputs)
        level, message = bytes([s.level]), s.message  # diagnostic_msgs levels are bytes
        if warnings + self._camera_warnings and level == DiagnosticStatus.OK:
            level, message = DiagnosticStatus.WARN, "; ".join(warnings + self._camera_warnings)
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: contact", message=message,
                                  hardware_id=f"ivlm_ros/{self.p['backend']}",
                                  values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        pub.publish(DiagnosticArray(header=self._diag_header(), status=[status]))

    def _diag_header(self) -> Any:
        from std_msgs.msg import Header

        return Header(stamp=self.get_clock().now().to_msg())


def _stamp_ns(header: Any) -> int:
    return Time.from_msg(header.stamp).nanoseconds


def main(args: list[str] | None = None) -> None:
    """`ros2 run ivlm_ros contact_node`: the node, unconfigured (launch files drive the lifecycle)."""
    rclpy.init(args=args)
    node = ContactNode()

    def cleanup() -> None:
        node._release()

    spin_until_shutdown(node, cleanup)
