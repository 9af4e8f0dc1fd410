"""Launch files and the launcher (ROS 2 ``launch`` / ``launch_ros`` shape)."""

from energizeos.launch.description import (
    DeclareLaunchArgument,
    ExecuteProcess,
    IncludeLaunchDescription,
    LaunchConfiguration,
    LaunchContext,
    LaunchDescription,
    LaunchError,
    Node,
    OpaqueFunction,
)

__all__ = [
    "DeclareLaunchArgument",
    "ExecuteProcess",
    "IncludeLaunchDescription",
    "LaunchConfiguration",
    "LaunchContext",
    "LaunchDescription",
    "LaunchError",
    "Node",
    "OpaqueFunction",
]
