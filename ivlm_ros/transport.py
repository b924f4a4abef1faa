"""Camera input transport: subscriber QoS matched to the publishers, and the delivered frame rate.

QoS: a camera driver usually publishes images *reliable*; a best-effort subscription then gets
whatever the network and the writer's history allow, and large frames split into many fragments
are lost whole (over Fast DDS 1280x720 rgb8 frames from another process: 1 of 40 delivered). Like
rosbag2's adaptive QoS (rosbag2_transport/src/rosbag2_transport/qos.cpp, `adapt_request_to_offers`),
the subscription is reliable when every publisher on the topic is reliable, and best effort
otherwise (a reliable reader does not match a best-effort writer). It is re-evaluated when the set
of publishers changes. An explicit setting overrides it. History depth is FRAME_DEPTH, not rosbag2's
1: with depth 1 a 1920x1080 frame was often replaced in the reader's history before the executor
took it (bench/camera_transport.py: 0.72 of the frames reached the callback, 1.00 with depth 3);
the node's own queue keeps only the newest frame for processing, so the depth adds no latency.

Rate: from the header stamps of the frames that reached the callback, the rate the publisher sends
at (the shortest regular spacing between consecutive stamps) and the rate that arrived, so a node
that is starved by its transport says so; a topic with publishers and nothing arriving is starved too.
A starved best-effort input also gets the likely causes on this host (`best_effort_hints`).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ivlm_core.image_limits import MAX_IMAGE_PIXELS
from ivlm_core.settings import Setting

QOS_CHOICES = ("auto", "reliable", "best_effort", "sensor_data")  # sensor_data: best effort, depth 5
FRAME_DEPTH = 3  # frames the reader's history holds until the callback takes them (see the module docstring)


def matched_qos(offered: Sequence[ReliabilityPolicy], setting: str = "auto",
                depth: int = FRAME_DEPTH) -> QoSProfile:
    """The subscription QoS for publishers offering `offered` reliabilities (one per publisher).

    auto: reliable when there are publishers and all are reliable, else best effort (best effort
    matches every publisher, so an empty topic starts there), keeping the last `depth` messages.
    Durability is volatile: a stale latched frame is of no use to a contact estimate.
    """
    if setting not in QOS_CHOICES:
        raise ValueError(f"image_qos is {setting!r}; choose one of: {', '.join(QOS_CHOICES)}")
    if setting == "auto":
        reliable = bool(offered) and all(r == ReliabilityPolicy.RELIABLE for r in offered)
    else:
        reliable = setting == "reliable"
    depth = max(depth, 5) if setting == "sensor_data" else depth
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, durability=DurabilityPolicy.VOLATILE,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)


class MatchedSubscription:
    """A subscription whose reliability follows its topic's publishers (see `matched_qos`).

    `refresh()` (called periodically by the owner) re-reads the publishers from the ROS graph and
    re-creates the subscription when the matching QoS changed; `on_change(text)` reports it.
    """

    def __init__(self, node: Node, msg_type: type, topic: str, callback: Callable[[Any], None],
                 setting: str = "auto", on_change: Callable[[str], None] | None = None,
                 depth: int = FRAME_DEPTH) -> None:
        self._node, self._type, self._topic, self._callback = node, msg_type, topic, callback
        self._setting, self._on_change = setting, on_change
        self.publishers, self.publishers_since = 0, time.monotonic()  # count, and since when unchanged
        self.qos = matched_qos([], setting, depth)
        self._sub = node.create_subscription(msg_type, topic, callback, self.qos)
        self.refresh()

    @property
    def topic_name(self) -> str:
        """The fully resolved topic (namespace and remappings applied)."""
        return self._sub.topic_name

    @property
    def reliable(self) -> bool:
        return self.qos.reliability == ReliabilityPolicy.RELIABLE

    def refresh(self) -> None:
        if self._sub is None:
            return
        publishers = self._node.get_publishers_info_by_topic(self.topic_name)
        if len(publishers) != self.publishers:
            self.publishers, self.publishers_since = len(publishers), time.monotonic()
        if self._setting != "auto" or not publishers:  # no publisher: keep what matched the last one
            return
        offered = [p.qos_profile.reliability for p in publishers]
        qos = matched_qos(offered, self._setting, self.qos.depth)
        if qos.reliability == self.qos.reliability:
            return
        self._node.destroy_subscription(self._sub)
        self.qos = qos
        self._sub = self._node.create_subscription(self._type, self._topic, self._callback, qos)
        if self._on_change is not None:
            kind = "reliable" if self.reliable else "best effort"
            self._on_change(f"{self.topic_name}: {len(offered)} publisher(s), subscribed {kind}")

    def destroy(self) -> None:
        if self._sub is not None:
            self._node.destroy_subscription(self._sub)
            self._sub = None


@dataclass
class RateReport:
    """Frames per second over the window: as sent by the publisher and as received here."""

    expected_hz: float
    received_hz: float

    @property
    def ratio(self) -> float:
        return self.received_hz / self.expected_hz if self.expected_hz > 0 else 0.0


class StampRate:
    """Sent vs received frame rate of one topic from the header stamps of the frames received.

    The publisher's period is the 10th percentile of the spacing between consecutive received stamps
    (lost frames only make gaps longer, so the short end is the true period); the received rate is
    the count over the stamp span. Over the frames that arrived in the last `horizon_s` seconds (at
    most `window`), so a publisher that stopped is reported as such, not with its old rate.
    """

    def __init__(self, window: int = 100, horizon_s: float = 10.0) -> None:
        self._frames: deque[tuple[int, float]] = deque(maxlen=window)  # (stamp ns, arrival monotonic s)
        self.horizon_s = horizon_s

    def add(self, stamp_ns: int, arrived: float | None = None) -> None:
        """Record a message; stamps that are zero or not after the previous one are skipped."""
        if stamp_ns > 0 and (not self._frames or stamp_ns > self._frames[-1][0]):
            self._frames.append((stamp_ns, time.monotonic() if arrived is None else arrived))

    def count(self, now: float) -> int:
        """Messages that arrived in the last `horizon_s` seconds."""
        return sum(now - t <= self.horizon_s for _, t in self._frames)

    def report(self, now: float | None = None) -> RateReport | None:
        """None until 3 frames with increasing stamps arrived within the horizon."""
        now = time.monotonic() if now is None else now
        stamps = np.array([s for s, t in self._frames if now - t <= self.horizon_s], np.float64) * 1e-9
        if len(stamps) < 3:
            return None
        period = float(np.percentile(np.diff(stamps), 10))
        received = (len(stamps) - 1) / (stamps[-1] - stamps[0])
        return RateReport(expected_hz=1.0 / period, received_hz=received)


def rectified_topic(topic: str) -> bool:
    """Whether an image topic carries rectified images, by image_proc's names (image_rect,
    image_rect_color, and their compressed sub-topics)."""
    parts = topic.rstrip("/").split("/")
    name = parts[-2] if parts[-1] in ("compressed", "theora", "zstd") and len(parts) > 1 else parts[-1]
    return name.startswith("image_rect")


STARVED_RATIO = 0.8  # below this share of the sent frames arriving, diagnostics warn
HD_FRAME_BYTES = 1280 * 720 * 3  # frame size assumed for the hints while none has arrived
NODE_PROFILE = "config/fastdds_node.xml"
PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"


def shipped_dds_profile() -> Path | None:
    """The installed share/ivlm_ros/config/fastdds_node.xml, else the source tree's; None if neither."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        candidates = [Path(get_package_share_directory("ivlm_ros")) / NODE_PROFILE]
    except (ImportError, PackageNotFoundError):
        candidates = []
    candidates.append(Path(__file__).resolve().parents[1] / NODE_PROFILE)
    return next((c for c in candidates if c.is_file()), None)


def apply_dds_profile(environ: dict[str, str] | None = None) -> str:
    """Give this process the shipped Fast DDS profile for large frames (README "Large images") unless
    FASTDDS_DEFAULT_PROFILES_FILE is already set (a user's profile, or '' for Fast DDS's defaults) or
    the middleware is not Fast DDS. Call before rclpy.init. Returns what was decided, for the log."""
    env = os.environ if environ is None else environ
    rmw = env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if not rmw.startswith("rmw_fastrtps"):
        return f"DDS profile: none ({rmw} is not Fast DDS)"
    if env.get(PROFILE_VARIABLE) == "":  # '' = none; Fast DDS itself would log an error for it
        del env[PROFILE_VARIABLE]
        return f"DDS profile: none ({PROFILE_VARIABLE}='': Fast DDS's defaults)"
    if PROFILE_VARIABLE in env:
        return f"DDS profile: {env[PROFILE_VARIABLE]} (from {PROFILE_VARIABLE})"
    profile = shipped_dds_profile()
    if profile is None:
        return f"DDS profile: none ({NODE_PROFILE} is not installed)"
    env[PROFILE_VARIABLE] = str(profile)
    return f"DDS profile: {profile} (shipped; set {PROFILE_VARIABLE} to choose another, '' for none)"


def best_effort_hints(frame_bytes: int, environ: dict[str, str] | None = None,
                      rmem_max: Path = Path("/proc/sys/net/core/rmem_max")) -> list[str]:
    """Why frames of `frame_bytes` from a best-effort publisher may be lost here (README "Large images").

    Checks what this process can see: the discovery range (under LOCALHOST rmw_fastrtps adds the
    shared-memory transport whose 0.5 MB segment drops big best-effort frames), whether the node runs
    with a Fast DDS profile (`apply_dds_profile` gives it NODE_PROFILE), and the kernel's cap on socket
    receive buffers (Linux allocates twice the request, capped at twice net.core.rmem_max).
    """
    env = os.environ if environ is None else environ
    hints = []
    if env.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").upper() == "LOCALHOST":
        hints.append("ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST puts shared memory under every participant "
                     "and large best-effort frames are dropped in the camera's segment: make the camera "
                     "publish reliable or start it with config/fastdds_camera_shm.xml")
    if not env.get(PROFILE_VARIABLE):
        hints.append(f"{PROFILE_VARIABLE} is not set: run the node with {NODE_PROFILE} (the contact_node "
                     "executable and contact.launch.py do)")
    try:
        limit = int(rmem_max.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        limit = None
    if limit is not None and 2 * limit < frame_bytes:
        hints.append(f"net.core.rmem_max is {limit} B, the socket buffer cannot hold a {frame_bytes} B "
                     "frame: as root, sysctl -w net.core.rmem_max=67108864")
    return hints


class Inputs:
    """The node's input subscriptions (QoS matched to their publishers) and the rate each delivers."""

    def __init__(self, node: Node, setting: str = "auto") -> None:
        self._node, self._setting = node, setting
        self._subs: dict[str, MatchedSubscription] = {}
        self._rates: dict[str, StampRate] = {}
        self._bytes: dict[str, int] = {}  # size of the last message's data, per topic
        self._quiet: set[str] = set()  # topics that may fall silent (see subscribe)
        self._timer = node.create_timer(0.25, self.refresh)  # publishers come and go: look 4 times a second

    def subscribe(self, msg_type: type, topic: str, callback: Callable[[Any], None],
                  depth: int = FRAME_DEPTH, streams: bool = True) -> None:
        """Subscribe `callback` to `topic`, keeping the last `depth` messages until it takes them.

        streams: its publishers send every message (a camera), so gaps and silence are starvation;
        False for topics that may rightly skip messages (a detector that publishes only when it sees
        something): their rates are shown, never warned about.
        """
        rate = self._rates[topic] = StampRate()
        if not streams:
            self._quiet.add(topic)

        def on_message(msg: Any) -> None:
            stamp = msg.header.stamp
            rate.add(stamp.sec * 1_000_000_000 + stamp.nanosec)
            self._bytes[topic] = len(getattr(msg, "data", b""))
            callback(msg)

        self._subs[topic] = MatchedSubscription(self._node, msg_type, topic, on_message, self._setting,
                                                self._node.get_logger().info, depth)

    def refresh(self) -> None:
        for sub in self._subs.values():
            sub.refresh()

    @property
    def image_topic(self) -> str:
        """The resolved image topic (raw or compressed) the node subscribes to."""
        sub = self._subs.get("image") or self._subs.get("image/compressed")
        return sub.topic_name if sub is not None else "image"

    def status(self, now: float | None = None) -> tuple[dict[str, str], list[str]]:
        """Diagnostics values per topic ('input <topic>': rates and QoS) and the starved topics' warnings.

        Starved: under STARVED_RATIO of the sent messages arrive, or publishers have been there for the
        whole rate horizon and not one message arrived in it.
        """
        now = time.monotonic() if now is None else now
        values, warnings = {}, []
        for topic, sub in self._subs.items():
            rates, qos = self._rates[topic], "reliable" if sub.reliable else "best effort"
            rate, problem = rates.report(now), None
            if rate is None:
                values[f"input {sub.topic_name}"] = (f"fewer than 3 messages in the last 10 s "
                                                     f"({qos}; {sub.publishers} publisher(s))")
                if (sub.publishers and now - sub.publishers_since >= rates.horizon_s
                        and not rates.count(now)):
                    problem = f"{sub.publishers} publisher(s), no message arrived in {rates.horizon_s:.0f} s"
            else:
                values[f"input {sub.topic_name}"] = (f"{rate.received_hz:.1f} Hz received of "
                                                     f"{rate.expected_hz:.1f} Hz sent ({qos})")
                if rate.ratio < STARVED_RATIO:
                    problem = f"{rate.ratio:.0%} of the sent messages arrive"
            if problem is not None and topic not in self._quiet:
                hints = [] if sub.reliable else best_effort_hints(self._bytes.get(topic, HD_FRAME_BYTES))
                advice = "; ".join(hints) or "see README 'Large images' (DDS set-up) or image_qos"
                warnings.append(f"{sub.topic_name}: {problem} ({qos}); {advice}")
        return values, warnings

    def destroy(self) -> None:
        self._node.destroy_timer(self._timer)
        for sub in self._subs.values():
            sub.destroy()
        self._subs, self._rates, self._quiet = {}, {}, set()


# The node's input settings (see ivlm_core.settings), owned next to what they configure.
TRANSPORT_SETTINGS: dict[str, Setting] = {
    "image_qos": Setting("auto", "QoS of the inputs: auto = reliable when every publisher of the topic is, "
                         "else best effort (re-checked as publishers come and go); or force reliable / "
                         "best_effort", QOS_CHOICES),
    "max_image_pixels": Setting(MAX_IMAGE_PIXELS, "larger images are refused before decoding (width x "
                                "height; the default is above 8K UHD)", (1, 150_000_000), live=True),
}
