"""The simulated site: every node that exists so far, and the operator UI.

    energizeos launch sim_site [ui_port:=8501] [ui:=true]

Device nodes, the simulated plant, the safety arbiter and the rest join this file as they land.
"""

import sys
from pathlib import Path

from energizeos.launch import (
    DeclareLaunchArgument,
    ExecuteProcess,
    LaunchConfiguration,
    LaunchDescription,
    Node,
)

EMS_NODES = ["/site_monitor"]
UI_APP = str(Path(__file__).resolve().parents[1] / "ui" / "app.py")


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("ui_port", default_value="8501", description="Streamlit port (127.0.0.1 only)"),
        DeclareLaunchArgument("monitor_period_s", default_value="1.0"),
        Node(
            executable="site_monitor",
            name="site_monitor",
            parameters=[{"expected_nodes": EMS_NODES, "period_s": LaunchConfiguration("monitor_period_s")}],
            respawn=True,
            respawn_delay=1.0,
        ),
        ExecuteProcess(
            name="ui",
            cmd=[sys.executable, "-m", "streamlit", "run", UI_APP,
                 "--server.address", "127.0.0.1", "--server.port", LaunchConfiguration("ui_port"),
                 "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            respawn=True,
            shutdown_order=200,
        ),
    ])
