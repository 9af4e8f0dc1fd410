"""`energizeos launch` and the ros2-like CLI, as an integrator would use them, against real processes."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from energizeos.launch.description import LaunchError
from energizeos.launch.loader import load_launch_file
from energizeos.runtime import Node
from energizeos.runtime.zenoh_executor import ZenohExecutor
from energizeos_msgs.msg import MeterReading
from tests.conftest import ENERGIZEOS, GRAPH_NODES, REPO, Proc, free_port, start_node

pytestmark = pytest.mark.integration


def cli(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run([ENERGIZEOS, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def launch(procs: list[Proc], file: Path, *args: str, endpoint: str | None = None) -> Proc:
    endpoint = endpoint or f"tcp/127.0.0.1:{free_port()}"
    proc = Proc([ENERGIZEOS, "launch", str(file), "--router", endpoint, *args],
                env={"ENERGIZEOS_ZENOH_CONNECT": endpoint})
    procs.append(proc)
    return proc


def pid_of(line: str) -> int:
    return int(re.search(r"pid=(\d+)", line).group(1))


# --- loading: fail fast with the file, node and parameter named --------------------------------
def test_loader_resolves_arguments_includes_and_parameters():
    specs = load_launch_file(GRAPH_NODES / "include.launch.py")
    assert [s.name for s in specs] == ["talker", "second"]
    assert specs[0].params == {"rate_hz": 10.0} and specs[0].respawn and specs[0].shutdown_order == 0
    assert "__node:=talker" in specs[0].cmd


@pytest.mark.parametrize(("content", "expected"), [
    ("x = (", "failed to load: SyntaxError"),
    ("def other(): pass", "has no generate_launch_description"),
    ("from energizeos.launch import *\ndef generate_launch_description():\n"
     "    return LaunchDescription([Node(executable='no_such_node', name='n')])", "no module 'energizeos.nodes"),
    ("from energizeos.launch import *\ndef generate_launch_description():\n"
     "    return LaunchDescription([Node(executable='site_monitor', name='bad name')])", "invalid node name"),
    ("from energizeos.launch import *\ndef generate_launch_description():\n"
     "    return LaunchDescription([Node(executable='site_monitor', name='m', parameters=[{'x': {'a': 1}}])])",
     "parameter 'x' must be"),
    ("from energizeos.launch import *\ndef generate_launch_description():\n"
     "    return LaunchDescription([Node(executable='site_monitor', name='m', parameters=['missing.yaml'])])",
     "missing.yaml does not exist"),
    ("from energizeos.launch import *\ndef generate_launch_description():\n"
     "    return LaunchDescription([DeclareLaunchArgument('site')])", "argument 'site' is required"),
])
def test_broken_launch_files_name_what_is_wrong(tmp_path, content, expected):
    file = tmp_path / "broken.launch.py"
    file.write_text(content)
    with pytest.raises(LaunchError) as info:
        load_launch_file(file)
    assert str(file) in str(info.value) and expected in str(info.value)


def test_unknown_launch_argument_is_refused():
    with pytest.raises(LaunchError, match=r"unknown argument.*rate_hx.*it declares: rate_hz"):
        load_launch_file(GRAPH_NODES / "graph.launch.py", {"rate_hx": "1"})


@pytest.mark.parametrize(("file", "expected"), [
    ("bad_param.launch.py", "parameter 'rate_hz' expects float, got str 'fast'"),
    ("unknown_param.launch.py", "unknown parameter(s) rtae_hz"),
])
def test_bad_parameter_fails_the_launch_fast_naming_file_node_and_parameter(procs, file, expected):
    proc = launch(procs, GRAPH_NODES / file)
    started = time.monotonic()
    assert proc.popen.wait(30) == 2
    output = "\n".join(proc.lines)
    assert "FAILED" in output and file in output and "talker" in output and expected in output
    assert "respawning" not in output  # a configuration error is not retried
    assert time.monotonic() - started < 20


# --- running: respawn, prefixed logs, ordered shutdown -----------------------------------------
def test_launch_respawns_a_killed_node_and_shuts_down_in_order(router, procs):
    proc = launch(procs, GRAPH_NODES / "graph.launch.py", "rate_hz:=20.0", endpoint=router)
    first = pid_of(proc.wait_for_line("started talker pid="))
    proc.wait_for_line("started second pid=")
    executor = ZenohExecutor()
    try:
        node = Node("observer", executor=executor)
        sources: list[str] = []
        node.create_subscription(MeterReading, "/test/chatter", lambda m: sources.append(m.source), 100)
        assert executor._wait_for(lambda: f"talker-{first}" in sources, 15.0), proc.lines[-20:]

        mark = len(proc.lines)
        subprocess.run(["kill", "-9", str(first)], check=True)  # by PID: the process we started
        proc.wait_for_line("respawning talker (respawn #1)", after=mark)
        second = pid_of(proc.wait_for_line("started talker pid=", after=mark))
        assert second != first
        assert executor._wait_for(lambda: f"talker-{second}" in sources, 15.0)
    finally:
        executor.shutdown()
    mark = len(proc.lines)
    assert proc.stop(signal.SIGINT, 30) == 0
    stopped = [ln for ln in proc.lines[mark:] if ln.startswith("[launch] stopped")]
    assert [ln.split()[2] for ln in stopped] == ["talker", "second"]  # shutdown_order 0 before 100


def test_node_log_lines_are_prefixed_with_the_node_name(procs, tmp_path):
    file = tmp_path / "log.launch.py"
    file.write_text(
        "from energizeos.launch import LaunchDescription, Node\n"
        "def generate_launch_description():\n"
        "    return LaunchDescription([Node(executable='site_monitor', name='site_monitor',\n"
        "        parameters=[{'expected_nodes': ['/site_monitor', '/ghost'], 'period_s': 0.2}])])\n")
    proc = launch(procs, file)
    line = proc.wait_for_line("expected node /ghost is not alive")
    assert line.startswith("[site_monitor] [WARN] [")


# --- the ros2-like CLI -------------------------------------------------------------------------
def test_cli_graph_echo_pub_hz_and_service(router, procs):
    start_node(procs, "talker", "rate_hz:=20.0")
    result = cli("topic", "echo", "/test/chatter", "--count", "3", "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3 and all(d["source"].startswith("talker-") for d in lines)
    assert lines[0]["p_kw"] < lines[1]["p_kw"] < lines[2]["p_kw"]

    nodes = cli("node", "list")
    assert "/talker" in nodes.stdout.splitlines()
    topics = cli("topic", "list", "-t")
    assert "/test/chatter [energizeos_msgs/msg/MeterReading]" in topics.stdout

    hz = cli("topic", "hz", "/test/chatter", "--window", "3")
    rate = float(re.search(r"average rate: ([\d.]+) Hz", hz.stdout).group(1))
    assert 15.0 < rate < 25.0

    call = cli("service", "call", "/talker/stats", "energizeos_msgs/srv/Trigger", "{}", "--json")
    assert call.returncode == 0, call.stderr
    assert json.loads(json.loads(call.stdout)["message"])["pid"] == procs[0].pid

    before = json.loads(json.loads(cli("service", "call", "/talker/stats", "Trigger", "--json").stdout)["message"])
    pub = cli("topic", "pub", "/test/inbox", "energizeos_msgs/msg/MeterReading", "{p_kw: 12.5, source: cli}",
              "--times", "3", "--rate", "20")
    assert pub.returncode == 0, pub.stderr
    after = json.loads(json.loads(cli("service", "call", "/talker/stats", "Trigger", "--json").stdout)["message"])
    assert after["received"] - before["received"] == 3


@pytest.mark.parametrize(("args", "expected"), [
    (("topic", "pub", "/x", "energizeos_msgs/msg/NoSuch", "{}"), "unknown message type"),
    (("topic", "pub", "/x", "MeterReading", "{p_kw: [1"), "not valid YAML"),
    (("topic", "pub", "/x", "MeterReading", "{pkw: 1}"), "no field(s) pkw"),
    (("topic", "pub", "/x", "MeterReading", "{source: 5}"), "source must be str"),
    (("service", "call", "/x", "energizeos_msgs/srv/NoSuch"), "unknown service type"),
])
def test_cli_bad_input_gets_a_clear_error(router, args, expected):
    result = cli(*args)
    assert result.returncode != 0
    assert expected in " ".join((result.stdout + result.stderr).split())


def test_bag_record_writes_rosbag2_that_rosbags_reads_independently(router, procs, tmp_path):
    start_node(procs, "talker", "rate_hz:=20.0")
    bag = tmp_path / "bag"
    result = cli("bag", "record", "-o", str(bag), "/test/chatter", "--duration", "2")
    assert result.returncode == 0, result.stderr
    info = cli("bag", "info", str(bag))
    assert "mcap" in info.stdout and "/test/chatter" in info.stdout

    # An independent decoder: a fresh rosbags type store fed only the definition stored in the bag.
    with Reader(bag) as reader:
        (conn,) = reader.connections
        store = get_typestore(Stores.ROS2_JAZZY)
        store.register(get_types_from_msg(conn.msgdef.data, conn.msgtype))
        values = [store.deserialize_cdr(raw, conn.msgtype).p_kw for _c, _t, raw in reader.messages()]
    assert conn.msgtype == "energizeos_msgs/msg/MeterReading"
    assert len(values) >= 20 and values == sorted(values)
    assert f"{len(values)}" in info.stdout


def test_cli_entry_point_is_installed():
    assert Path(ENERGIZEOS).exists() and sys.executable
    assert "launch" in cli("--help").stdout
