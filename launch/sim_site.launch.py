"""The simulated site: the plant (four Modbus TCP devices with physics), the device nodes,
the graph monitor and the operator UI.

    energizeos launch sim_site [ui_port:=8501] [meter_poll_hz:=5.0]

The safety arbiter, dispatcher and the record-keeping nodes join this file as they land.
Shutdown order: the PCS path first (to 0 kW), then the other device nodes, the plant, the UI.
"""

import sys
from pathlib import Path

from energizeos.launch import DeclareLaunchArgument, ExecuteProcess, LaunchConfiguration, LaunchDescription, Node

DEVICE_NODES = ["meter_node", "relay_node", "bms_node", "pcs_node"]
EMS_NODES = ["/sim_plant", "/site_monitor", *(f"/{n}" for n in DEVICE_NODES)]
UI_APP = str(Path(__file__).resolve().parents[1] / "ui" / "app.py")


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("ui_port", default_value="8501", description="Streamlit port (127.0.0.1 only)"),
        DeclareLaunchArgument("monitor_period_s", default_value="1.0"),
        DeclareLaunchArgument("meter_poll_hz", default_value="5.0"),
        Node(executable="sim_plant", name="sim_plant", respawn=True, shutdown_order=150),
        Node(executable="meter_node", name="meter_node", respawn=True, shutdown_order=50,
             parameters=[{"poll_hz": LaunchConfiguration("meter_poll_hz")}]),
        Node(executable="relay_node", name="relay_node", respawn=True, shutdown_order=50),
        Node(executable="bms_node", name="bms_node", respawn=True, shutdown_order=50),
        Node(executable="pcs_node", name="pcs_node", respawn=True, shutdown_order=0),
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
                 "--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"],
            respawn=True,
            shutdown_order=200,
        ),
    ])
