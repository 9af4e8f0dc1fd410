"""The simulated site: the plant (four Modbus TCP devices with physics), the device nodes,
the graph monitor and the operator UI, configured from one site file.

    energizeos launch sim_site [site_config:=config/sim_site.yaml] [ui:=true] [ui_port:=8501]

Shutdown order: the PCS path first (to 0 kW), then the other device nodes, the alarm manager,
the historian (so the last commands are recorded), the plant, the UI.
"""

import sys
from pathlib import Path

from energizeos.launch import (
    DeclareLaunchArgument,
    ExecuteProcess,
    LaunchConfiguration,
    LaunchDescription,
    LaunchError,
    Node,
    OpaqueFunction,
)
from energizeos.site_config import SiteConfigError, device_node_parameters, load_site_config

REPO = Path(__file__).resolve().parents[1]
# The PCS path stops first and commands 0 kW on its way out: dispatcher, arbiter, then pcs_node.
SHUTDOWN_ORDER = {"dispatcher": 0, "safety_arbiter": 5, "pcs_node": 10, "meter_node": 50, "relay_node": 50,
                  "bms_node": 50, "alarm_manager": 110, "planner": 20, "reporter": 115, "assistant": 115,
                  "historian": 120, "uplink": 118, "sim_plant": 150}


def site_nodes(context):
    """Nodes from the site config: the plant (if simulated), the device nodes, the EMS nodes, the graph monitor."""
    path = Path(context.launch_configurations["site_config"])
    if not path.is_absolute() and not path.exists():
        path = REPO / path  # relative to the repository when not found from here
    try:
        params = device_node_parameters(load_site_config(path))
    except SiteConfigError as exc:
        raise LaunchError(str(exc)) from exc
    nodes = [Node(executable=name, name=name, parameters=[p], respawn=True, shutdown_order=SHUTDOWN_ORDER[name])
             for name, p in params.items()]
    expected = sorted(f"/{n}" for n in [*params, "site_monitor"])
    nodes.append(Node(executable="site_monitor", name="site_monitor", respawn=True,
                      parameters=[{"expected_nodes": expected,
                                   "period_s": LaunchConfiguration("monitor_period_s")}]))
    if context.launch_configurations["ui"].lower() in ("true", "1", "yes"):
        nodes.append(ExecuteProcess(
            name="ui",
            cmd=[sys.executable, "-m", "energizeos.ui.serve", "--site-config", str(path),
                 "--port", LaunchConfiguration("ui_port")],
            respawn=True,
            shutdown_order=200,
        ))
    return nodes


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("site_config", default_value="config/sim_site.yaml",
                              description="site configuration (YAML, see energizeos/site_config.py)"),
        DeclareLaunchArgument("ui", default_value="true", description="start the Streamlit UI"),
        DeclareLaunchArgument("ui_port", default_value="8501", description="Streamlit port (127.0.0.1 only)"),
        DeclareLaunchArgument("monitor_period_s", default_value="1.0"),
        OpaqueFunction(function=site_nodes),
    ])
