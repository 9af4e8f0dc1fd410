"""Multi-process tests over a real Zenoh session on loopback: pub/sub, latched topics, services,
graph introspection, malformed payloads, and node processes started the way launch starts them."""

from __future__ import annotations

import json
import time

import pytest
import zenoh

from energizeos.runtime import Node, ServiceCallError, qos_profile_latched
from energizeos.runtime.zenoh_executor import ZenohExecutor
from energizeos.runtime.zenoh_keys import data_key
from energizeos_msgs import serialize
from energizeos_msgs.msg import Alarm, MeterReading
from energizeos_msgs.srv import Trigger
from tests.conftest import start_node

pytestmark = pytest.mark.integration


@pytest.fixture
def executor(router: str):
    ex = ZenohExecutor()
    yield ex
    ex.shutdown()


def wait_until(ex: ZenohExecutor, predicate, timeout: float = 10.0) -> bool:
    return ex._wait_for(predicate, timeout)


def stats(node: Node, name: str) -> dict:
    client = node.create_client(Trigger, f"/{name}/stats")
    assert client.wait_for_service(10.0), f"/{name}/stats never appeared"
    return json.loads(client.call(Trigger.Request(), 5.0).message)


def test_pubsub_between_processes_in_order(executor, procs):
    talker = start_node(procs, "talker", "rate_hz:=50.0")
    node = Node("listener", executor=executor)
    got: list[MeterReading] = []
    node.create_subscription(MeterReading, "/test/chatter", got.append, 100)
    assert wait_until(executor, lambda: len(got) >= 20), talker.lines[-10:]
    seqs = [m.p_kw for m in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # in order, no duplicates
    assert all(isinstance(m, MeterReading) and m.source == f"talker-{talker.pid}" for m in got)
    assert node.count_publishers("/test/chatter") == 1


def test_latched_topic_reaches_a_late_joiner_only_with_transient_local(executor, procs):
    talker = start_node(procs, "talker")
    probe = Node("probe", executor=executor)
    assert wait_until(executor, lambda: probe.count_publishers("/test/latched") == 1)
    time.sleep(1.0)  # the single latched sample was published long before we subscribe
    node = Node("late", executor=executor)
    latched: list[MeterReading] = []
    volatile: list[MeterReading] = []
    node.create_subscription(MeterReading, "/test/latched", latched.append, qos_profile_latched)
    node.create_subscription(MeterReading, "/test/latched", volatile.append, 10)
    assert wait_until(executor, lambda: len(latched) == 1, 10.0)
    executor.spin_for(0.5)
    assert latched[0].source == f"latched-{talker.pid}"
    assert volatile == []


def test_service_call_across_processes_and_missing_service(executor, procs):
    talker = start_node(procs, "talker")
    node = Node("caller", executor=executor)
    first = stats(node, "talker")
    assert first["pid"] == talker.pid
    executor.spin_for(0.5)
    assert stats(node, "talker")["published"] > first["published"]  # answers from live state
    missing = node.create_client(Trigger, "/nobody/here")
    assert not missing.service_is_ready()
    started = time.monotonic()
    with pytest.raises(ServiceCallError, match="/nobody/here"):
        missing.call(Trigger.Request(), timeout_sec=1.0)
    assert time.monotonic() - started < 3.0


def test_graph_introspection_sees_nodes_come_and_go(executor, procs):
    talker = start_node(procs, "talker")
    node = Node("observer", executor=executor)
    assert wait_until(executor, lambda: "talker" in node.get_node_names())
    # a node's own token can arrive before those of its publishers and services
    assert wait_until(executor, lambda: node.count_publishers("/test/chatter") == 1)
    assert wait_until(executor, lambda: dict(node.get_service_names_and_types()).get("/talker/stats"))
    topics = dict(node.get_topic_names_and_types())
    assert topics["/test/chatter"] == ["energizeos_msgs/msg/MeterReading"]
    assert ("/talker/stats", ["energizeos_msgs/srv/Trigger"]) in node.get_service_names_and_types()
    talker.stop(sig=9)  # SIGKILL: no clean undeclare, the token must still go away
    assert wait_until(executor, lambda: "talker" not in node.get_node_names(), 20.0)


def test_malformed_and_wrong_type_payloads_are_counted_and_the_node_keeps_running(executor, procs):
    start_node(procs, "talker")
    node = Node("sender", executor=executor)
    good = node.create_publisher(MeterReading, "/test/inbox", 10)
    wrong = node.create_publisher(Alarm, "/test/inbox", 10)
    assert wait_until(executor, lambda: good.get_subscription_count() == 1)
    raw_key = data_key(0, "/test/inbox", MeterReading.__msgtype__)
    for garbage in (b"", b"\x00\x01", b"\x00\x01\x00\x00\xff\xff", b"not cdr at all" * 3):
        executor.session.put(raw_key, garbage)  # the right key, a broken payload
    wrong.publish(Alarm(code="X"))
    for i in range(5):
        good.publish(MeterReading(p_kw=float(i)))
    report: dict = {}

    def counted() -> bool:
        report.update(stats(node, "talker"))
        return report["decode_errors"] == 5 and report["received"] == 5

    assert wait_until(executor, counted, 10.0), report
    assert "wrong type" in report["last_error"] or "malformed" in report["last_error"]


def test_a_raw_zenoh_subscriber_sees_ros2_style_keys(executor, procs):
    """rmw_zenoh key layout: <domain>/<topic>/<pkg::msg::dds_::Type_>/<RIHS01 hash>."""
    start_node(procs, "talker")
    keys: list[str] = []
    payloads: list[bytes] = []

    def keep(sample: zenoh.Sample) -> None:
        keys.append(str(sample.key_expr))
        payloads.append(sample.payload.to_bytes())

    sub = executor.session.declare_subscriber("0/test/chatter/**", keep)
    try:
        assert wait_until(executor, lambda: len(keys) >= 3)
    finally:
        sub.undeclare()
    assert keys[0] == data_key(0, "/test/chatter", MeterReading.__msgtype__)
    assert keys[0].startswith("0/test/chatter/energizeos_msgs::msg::dds_::MeterReading_/RIHS01_")
    assert payloads[0][:4] == b"\x00\x01\x00\x00"  # CDR little-endian encapsulation, as ROS 2
    sample = MeterReading(source="x")
    assert serialize(sample)[:4] == payloads[0][:4]
