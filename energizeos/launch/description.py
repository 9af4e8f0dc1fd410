"""Launch-file vocabulary, shaped like ROS 2's ``launch`` / ``launch_ros``.

    from energizeos.launch import DeclareLaunchArgument, LaunchConfiguration, LaunchDescription, Node

    def generate_launch_description():
        return LaunchDescription([
            DeclareLaunchArgument("rate_hz", default_value="5.0"),
            Node(executable="site_monitor", name="site_monitor",
                 parameters=[{"period_s": LaunchConfiguration("rate_hz")}], respawn=True),
        ])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class LaunchError(RuntimeError):
    """A broken launch file, argument or parameter; the message names the file, node and item."""


@dataclass(frozen=True)
class LaunchConfiguration:
    """The value of a launch argument, substituted when the launch file is loaded."""

    name: str
    default: str | None = None


@dataclass
class DeclareLaunchArgument:
    name: str
    default_value: str | None = None
    description: str = ""


@dataclass
class Node:
    """One node process. ``executable`` names a module in ``energizeos.nodes`` (e.g. "site_monitor")
    or a .py file relative to the launch file; ``module`` gives a dotted module path instead.
    The module's ``main(args)`` is called with ``--ros-args`` carrying name, namespace and parameters.
    """

    executable: str | None = None
    package: str = "energizeos"
    module: str | None = None
    name: str | None = None
    namespace: str = ""
    parameters: list[dict[str, Any] | str | LaunchConfiguration] = field(default_factory=list)
    remappings: list[tuple[str, str]] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)
    respawn: bool = False
    respawn_delay: float = 1.0
    shutdown_order: int = 100  # lower stops first (the PCS path goes first, to 0 kW)
    env: dict[str, str] = field(default_factory=dict)
    log_level: str | None = None


@dataclass
class ExecuteProcess:
    """Any other process (the simulated plant, the Streamlit UI)."""

    cmd: list[str | LaunchConfiguration]
    name: str
    respawn: bool = False
    respawn_delay: float = 1.0
    shutdown_order: int = 100
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None


@dataclass
class IncludeLaunchDescription:
    """Another launch file (path relative to this one), with arguments for it."""

    path: str | LaunchConfiguration
    launch_arguments: dict[str, str | LaunchConfiguration] | list[tuple[str, str]] = field(default_factory=dict)


@dataclass
class LaunchContext:
    """What an OpaqueFunction sees: the launch arguments, resolved."""

    launch_configurations: dict[str, str]


@dataclass
class OpaqueFunction:
    """Entities computed from the resolved arguments (e.g. nodes built from a site config file)."""

    function: Callable[[LaunchContext], list[Any]]


@dataclass
class LaunchDescription:
    entities: list[Any] = field(default_factory=list)
