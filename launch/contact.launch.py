"""`ros2 launch ivlm_ros contact.launch.py`: the contact node, configured and activated, plus optional
player (images from files, no camera or detector needed) and RViz.

    ros2 launch ivlm_ros contact.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info detections:=/yolo/detections
    ros2 launch ivlm_ros contact.launch.py player_source:=<image|folder|video> use_rviz:=true
"""

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

NODE_PROFILE = PathJoinSubstitution([FindPackageShare("ivlm_ros"), "config", "fastdds_node.xml"])
ARGUMENTS = {
    "backend": ("", "contact backend (keypoint, interactvlm); '' = the params file's"),
    "params_file": (PathJoinSubstitution([FindPackageShare("ivlm_ros"), "config", "contact.yaml"]),
                    "node parameters (YAML)"),
    "namespace": ("", "namespace of the node (and of the player)"),
    "node_name": ("contact_node", "name of the contact node"),
    "image": ("image", "sensor_msgs/Image topic (image/compressed is derived with use_compressed)"),
    "camera_info": ("camera_info", "sensor_msgs/CameraInfo topic"),
    "detections": ("detections", "vision_msgs/Detection2DArray (or ivlm_ros/ObjectDetectionArray) topic"),
    "autostart": ("true", "configure and activate the lifecycle node on start"),
    "use_rviz": ("false", "start RViz with config/contact.rviz"),
    "player_source": ("", "also start the player on this image, folder or video ('' = no player)"),
    "player_rate_hz": ("2.0", "player frame rate"),
    "player_labels": ("", "labels.json for the player ('' = <folder>/labels.json)"),
    "fastdds_profile": (EnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", default_value=NODE_PROFILE),
                        "FASTDDS_DEFAULT_PROFILES_FILE of the contact node: the variable if set, else the "
                        "shipped config/fastdds_node.xml (UDP with a large receive buffer: HD frames from a "
                        "best-effort camera arrive whole; the node's executable applies the same default); "
                        "'' = Fast DDS defaults"),
}


def _nodes(context: LaunchContext) -> list:
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    overrides = {"backend": arg["backend"]} if arg["backend"] else {}
    remaps = [("image", arg["image"]), ("image/compressed", arg["image"] + "/compressed"),
              ("camera_info", arg["camera_info"]), ("detections", arg["detections"])]
    # large images: the node's Fast DDS profile (README "Large images"; '' reaches the node as "none")
    env = {"FASTDDS_DEFAULT_PROFILES_FILE": arg["fastdds_profile"]}
    node = LifecycleNode(package="ivlm_ros", executable="contact_node", name=arg["node_name"],
                         namespace=arg["namespace"], output="screen", additional_env=env,
                         parameters=[arg["params_file"], overrides], remappings=remaps)
    actions = [node]
    if arg["autostart"].lower() == "true":
        actions += [
            RegisterEventHandler(OnStateTransition(
                target_lifecycle_node=node, goal_state="inactive", handle_once=True,
                entities=[EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                                      transition_id=Transition.TRANSITION_ACTIVATE))])),
            EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                        transition_id=Transition.TRANSITION_CONFIGURE)),
        ]
    if arg["player_source"]:
        actions.append(Node(package="ivlm_ros", executable="player", name="player",
                            namespace=arg["namespace"], output="screen", remappings=remaps,
                            parameters=[{"source": arg["player_source"], "labels": arg["player_labels"],
                                         "rate_hz": float(arg["player_rate_hz"])}]))
    return actions


def generate_launch_description() -> LaunchDescription:
    rviz_config = PathJoinSubstitution([FindPackageShare("ivlm_ros"), "config", "contact.rviz"])
    return LaunchDescription([
        *[DeclareLaunchArgument(name, default_value=default, description=description)
          for name, (default, description) in ARGUMENTS.items()],
        OpaqueFunction(function=_nodes),
        Node(package="rviz2", executable="rviz2", name="rviz2", arguments=["-d", rviz_config],
             condition=IfCondition(LaunchConfiguration("use_rviz"))),
    ])
