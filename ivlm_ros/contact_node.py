"""Lifecycle node: camera image + detections in, ContactArray + RViz markers + diagnostics out.

configure: check the parameters, load the pipeline (ivlm_core.pipeline) and the marker body mesh, create
publishers; activate: subscribe, start the worker; deactivate: stop both; cleanup: free what configure took.
Callbacks only store messages; one worker takes the newest image paired with its detections
(ivlm_core.pairing), runs the pipeline and publishes, so a slow backend never builds a queue.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from ivlm_core.contact_report import placed_objects
from ivlm_core.diagnostics import ERROR, WARN, FrameStats
from ivlm_core.pairing import FramePairer, FrameQueue
from ivlm_core.pipeline import ContactPipeline
from ivlm_core.rate_limit import RateLimit
from ivlm_core.settings import SETTINGS, Setting, check_changes, check_settings, unknown_names
from ivlm_core.types import DISTORTION_MODELS, DISTORTION_WARN_PX, CameraIntrinsics, Detection
from ivlm_ros import conversions, markers
from ivlm_ros.msg import ContactArray
from ivlm_ros.spin import limit_malloc_arenas, spin_until_shutdown
from ivlm_ros.srv import EstimateContact
from ivlm_ros.transport import TRANSPORT_SETTINGS, Inputs, apply_dds_profile, rectified_topic

PARAMETERS: dict[str, Setting] = SETTINGS | TRANSPORT_SETTINGS  # each is also in config/contact.yaml


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
        self._pipeline: ContactPipeline | None = None
        self._queue: FrameQueue | None = None
        self._markers: markers.MarkerWorker | None = None
        self._camera_info: CameraInfo | None = None
        self._worker: threading.Thread | None = None
        self._running = False
        self._inputs: Inputs | None = None
        self._backend_lock = threading.Lock()  # the worker's frame or one ~/estimate request at a time
        self.create_service(EstimateContact, "~/estimate", self._on_estimate)
        self._camera_warnings: list[str] = []
        self._pubs: dict[str, Any] = {}
        self._diag_timer = None
        self._problem_rate = RateLimit()
        self._stats = FrameStats()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            values = {name: self.get_parameter(name).value for name in PARAMETERS}
            self.p = p = check_settings(PARAMETERS, values)
            t0 = time.monotonic()
            self._pipeline = ContactPipeline(p)
            self._body_mesh = None if not p["publish_markers"] else markers.body_marker_mesh(
                self._pipeline.backend.body, p["marker_max_triangles"])
        except Exception as exc:  # any load failure: stay unconfigured and say why
            self.get_logger().error(f"configure failed: {exc}")
            self._stats.last_error = f"configure: {exc}"
            self._release()
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
        # a problem frame is published at once, but a stream of them at most once per period
        self._problem_rate = RateLimit(1.0 / self.p["diagnostics_period_s"])
        self._stats = FrameStats()
        self.get_logger().info(f"configured in {time.monotonic() - t0:.1f} s: backend '{p['backend']}' on "
                               f"{p['device']}")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self.p
        self._inputs = Inputs(self, p["image_qos"])
        if p["use_compressed"]:
            self._inputs.subscribe(CompressedImage, "image/compressed", self._on_image)
        else:
            self._inputs.subscribe(Image, "image", self._on_image)
        self._inputs.subscribe(CameraInfo, "camera_info", self._on_camera_info)
        if p["use_detections"]:
            msg_type, self._convert_detections, _ = conversions.detection_messages(p["detections_type"])
            # a detector may skip frames without objects: the pairing reports frames left unpaired
            self._inputs.subscribe(msg_type, "detections", self._on_detections, depth=10, streams=False)
        pairer = FramePairer(p["pairing_tolerance_s"], p["detection_wait_s"],
                             use_detections=p["use_detections"])
        self._queue = FrameQueue(pairer, self._stats, p["max_rate_hz"])
        self._pipeline.tracker.reset()  # frames after a pause start new ids and smoothing
        if self._body_mesh is not None:
            self._markers = markers.MarkerWorker(self._pubs["markers"], self._body_mesh,
                                                 p["marker_max_triangles"], self._report_error)
        self._running = True
        self._worker = threading.Thread(target=self._work, name="ivlm_contact_worker", daemon=True)
        self._worker.start()
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

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        """Undo configure (cleanup, shutdown, error): workers, inputs, publishers, timer, pipeline, meshes."""
        self._stop_work()
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        if self._pipeline is not None:
            self._pipeline.close()
        self._pubs, self._diag_timer = {}, None
        self._pipeline = self._body_mesh = self._queue = self._camera_info = None

    def _stop_work(self) -> None:
        if self._inputs is not None:
            self._inputs.destroy()
            self._inputs = None
        self._running = False
        if self._queue is not None:
            self._queue.stop()
        if self._worker is not None:
            self._worker.join(timeout=30.0)
        if self._markers is not None:
            self._markers.stop()
        self._worker = self._markers = None

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Live settings are checked and applied at once; the others change only while unconfigured."""
        configured = self._pipeline is not None
        try:
            changed = check_changes(PARAMETERS, {q.name: q.value for q in params}, configured)
            if configured and changed:
                p = {**self.p, **changed}
                self._pipeline.update(p)
                self.p = p
                if self._queue is not None:
                    self._queue.configure(p["pairing_tolerance_s"], p["detection_wait_s"], p["max_rate_hz"])
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _on_image(self, msg: Image | CompressedImage) -> None:
        if self._queue is not None:
            self._queue.add_image(msg, _stamp_ns(msg.header))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _on_detections(self, msg: Any) -> None:
        parsed = self._convert_detections(msg, self.p["class_names"])
        if self._queue is not None:
            self._queue.add_detections(_stamp_ns(msg.header), (parsed.detections, parsed.problems))

    def _work(self) -> None:
        while (item := self._queue.next()) is not None:
            try:
                with self._backend_lock:
                    self._process(*item)
            except Exception as exc:  # a bad frame must never take the node down
                self._report_error(item[0].header, exc)

    def _report_error(self, header: Any, exc: Exception) -> None:
        self._stats.error(f"frame {_stamp_ns(header) * 1e-9:.3f}: {exc}")
        if isinstance(exc, ValueError):
            self.get_logger().warning(self._stats.last_error, throttle_duration_sec=5.0)
        else:
            self.get_logger().error(f"{self._stats.last_error}\n{traceback.format_exc()}",
                                    throttle_duration_sec=5.0)
        self._publish_problem()

    def _camera(self, width: int, height: int, info: CameraInfo | None) -> tuple[CameraIntrinsics, list[str]]:
        """The frame's intrinsics (P for a rectified image topic, else K) and the warnings that go with
        them: an uncalibrated CameraInfo (K all zeros; default_fov_deg is used), a distorting lens."""
        topic = self._inputs.image_topic if self._inputs is not None else "image"
        camera = None if info is None else conversions.camera_from_info(info, rectified_topic(topic))
        if camera is not None:
            camera.check_image_size(width, height)
            return camera, distortion_warnings(camera, info, topic)
        warnings = [] if info is None else [
            f"camera_info K is all zeros (an uncalibrated driver): using default_fov_deg = "
            f"{self.p['default_fov_deg']} deg; calibrate the camera for metric 3D"]
        return CameraIntrinsics.from_fov(width, height, self.p["default_fov_deg"]), warnings

    def _process(self, msg: Image | CompressedImage, paired: tuple[list[Detection], list[str]] | None,
                 request: CameraInfo | None = None) -> ContactArray:
        """One frame through the pipeline; published, or only returned for an ~/estimate `request` (its
        CameraInfo, width 0 = the stream's): then no tracking, person ids are the frame's person indices."""
        t0 = time.monotonic()
        if isinstance(msg, CompressedImage):
            rgb = conversions.compressed_to_rgb(msg, self.p["max_image_pixels"])
        else:
            rgb = conversions.image_to_rgb(msg, self.p["max_image_pixels"])
        info = self._camera_info if request is None or not request.width else request
        camera, camera_warnings = self._camera(rgb.shape[1], rgb.shape[0], info)
        if request is None:  # the stream's camera, not an ~/estimate request's
            self._camera_warnings = camera_warnings
        detections, problems = paired if paired is not None else ([], [])
        est = self._pipeline.estimate(rgb, camera, detections, problems, track=request is None)
        pairs = zip(est.reports, est.person_ids, strict=True)
        contacts = [conversions.contact_to_msg(report, person_id) for report, person_id in pairs]
        out = ContactArray(header=msg.header, contacts=contacts)
        if request is not None:
            return out
        self._pubs["contacts"].publish(out)
        if "objects_3d" in self._pubs and self._pubs["objects_3d"].get_subscription_count():
            self._pubs["objects_3d"].publish(conversions.placed_objects_to_vision_msgs(
                msg.header, placed_objects(est.reports)))
        s, stamp = self._stats, _stamp_ns(msg.header)
        overhead_ms = (time.monotonic() - t0) * 1e3 - est.backend_ms
        for warning in s.record(time.monotonic(), self.get_clock().now().nanoseconds, stamp, overhead_ms,
                                est.backend_ms, msg.header.frame_id):
            self.get_logger().warning(warning)
        s.outcome(stamp, est.problems, sorted({r.reason for r in est.results if r.reason}), len(est.results),
                  ERROR if self.p["unknown_label_policy"] == "error" else WARN)
        if est.problems:
            self._publish_problem()
        if self._markers is not None:
            self._markers.offer(msg.header, est.reports, est.person_ids, self.p["marker_rate_hz"])
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

    def _publish_problem(self) -> None:
        """Diagnostics now for a problem frame, unless one went out within the period (the periodic
        message then carries the error count and the last error)."""
        now = time.monotonic()
        if self._problem_rate.wait_s(now) == 0.0:
            self._problem_rate.start(now)
            self._publish_diagnostics()

    def _publish_diagnostics(self) -> None:
        pub = self._pubs.get("diagnostics")
        if pub is None:
            return
        inputs, warnings = self._inputs.status() if self._inputs is not None else ({}, [])
        level, message, stream = self._stats.snapshot(warnings + self._camera_warnings)
        values = {"backend": self.p["backend"], "device": self.p["device"], **stream,
                  **(self._queue.values() if self._queue is not None else {}),
                  "parameter_warnings": "; ".join(self._parameter_warnings), **inputs}
        status = DiagnosticStatus(level=bytes([level]), name=f"{self.get_name()}: contact", message=message,
                                  hardware_id=f"ivlm_ros/{self.p['backend']}",
                                  values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        pub.publish(DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()), status=[status]))


def distortion_warnings(camera: CameraIntrinsics, info: CameraInfo, topic: str) -> list[str]:
    """A warning when camera_info says the lens distorts the image noticeably and the image `topic` is
    not a rectified one (image_proc names those image_rect*): the node sees images as pinhole K."""
    if rectified_topic(topic):
        return []
    shift = camera.distortion_px(info.d, info.distortion_model)
    if shift <= DISTORTION_WARN_PX:
        return []
    how = (f"moves the image border by up to {shift:.0f} px" if math.isfinite(shift) else
           f"is not one this node can evaluate ({', '.join(DISTORTION_MODELS)})")
    return [f"camera_info's '{info.distortion_model}' distortion {how}, but the node treats {topic} as "
            f"undistorted (pinhole K): remap image to the rectified image (image_proc's image_rect) "
            f"for accurate 3D"]


def _stamp_ns(header: Any) -> int:
    return Time.from_msg(header.stamp).nanoseconds


def main(args: list[str] | None = None) -> None:
    """`ros2 run ivlm_ros contact_node`: the node, unconfigured (launch files drive the lifecycle), in a
    process with the shipped Fast DDS profile unless FASTDDS_DEFAULT_PROFILES_FILE says otherwise."""
    limit_malloc_arenas()  # cleanup then gives back what configure took (see bench/lifecycle_churn.py)
    dds = apply_dds_profile()  # full-size frames from best-effort cameras arrive whole
    rclpy.init(args=args)
    node = ContactNode()
    node.get_logger().info(dds)
    spin_until_shutdown(node, node._release)
