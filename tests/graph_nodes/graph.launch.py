"""Launch file for the multi-process tests."""

from energizeos.launch import DeclareLaunchArgument, LaunchConfiguration, LaunchDescription, Node


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("rate_hz", default_value="20.0"),
        Node(executable="graph_node.py", name="talker", parameters=[{"rate_hz": LaunchConfiguration("rate_hz")}],
             respawn=True, respawn_delay=0.5, shutdown_order=0),
        Node(executable="graph_node.py", name="second", parameters=[{"topic": "/test/second", "rate_hz": 5.0}]),
    ])
