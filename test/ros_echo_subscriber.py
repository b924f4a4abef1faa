"""Subscriber process for the message round-trip test: writes the first ContactArray it receives.

usage: python ros_echo_subscriber.py TOPIC OUT_FILE   (the raw CDR bytes of the message)
"""

import sys
import time

import rclpy
from rclpy.serialization import serialize_message

from ivlm_ros.msg import ContactArray


def main() -> None:
    topic, out_file = sys.argv[1], sys.argv[2]
    rclpy.init()
    node = rclpy.create_node("ivlm_echo_subscriber")
    received: list[ContactArray] = []
    node.create_subscription(ContactArray, topic, received.append, 10)
    deadline = time.monotonic() + 30.0
    while not received and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    if received:
        with open(out_file, "wb") as f:
            f.write(serialize_message(received[0]))
    node.destroy_node()
    rclpy.shutdown()
    sys.exit(0 if received else 1)


if __name__ == "__main__":
    main()
