"""Node API on the deterministic SimExecutor: pub/sub, timers, QoS, services, graph, bad payloads."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energizeos import runtime
from energizeos.runtime import (
    DurabilityPolicy,
    Duration,
    HistoryPolicy,
    Node,
    QoSProfile,
    ServiceCallError,
    SimClock,
    SimExecutor,
    Time,
    qos_profile_latched,
    qos_profile_sensor_data,
)
from energizeos_msgs import serialize
from energizeos_msgs.msg import Alarm, DispatchRequest, MeterReading, PcsCommand
from energizeos_msgs.msg import Time as TimeMsg
from energizeos_msgs.srv import AlarmAction, SetDispatchMode, Trigger

S = 1_000_000_000
MS = 1_000_000
METER = "/site/poi/meter"


@pytest.fixture
def ex() -> SimExecutor:
    return SimExecutor()


def meter(p_kw: float) -> MeterReading:
    return MeterReading(source="meter_poi", p_kw=p_kw)


# --------------------------------------------------------------------------------------------
# publish / subscribe
# --------------------------------------------------------------------------------------------
def test_pub_sub_delivery_in_publish_order(ex):
    talker, listener = Node("talker", executor=ex), Node("listener", executor=ex)
    pub = talker.create_publisher(MeterReading, METER, 10)
    got: list[float] = []
    sub = listener.create_subscription(MeterReading, METER, lambda m: got.append(m.p_kw), 10)
    assert pub.get_subscription_count() == 1
    for i in range(5):
        pub.publish(meter(float(i)))
    assert got == []  # nothing runs until the executor spins
    ex.run_pending()
    assert got == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert pub.published == 5 and sub.received == 5 and sub.dropped == 0 and sub.decode_errors == 0


def test_each_subscription_gets_its_own_copy_and_other_topics_nothing(ex):
    talker = Node("talker", executor=ex)
    a, b = Node("a", executor=ex), Node("b", executor=ex)
    pub = talker.create_publisher(MeterReading, METER, 10)
    got_a, got_b, got_other = [], [], []
    a.create_subscription(MeterReading, METER, got_a.append, 10)
    b.create_subscription(MeterReading, METER, got_b.append, 10)
    b.create_subscription(MeterReading, "/site/other", got_other.append, 10)
    pub.publish(meter(7.5))
    ex.run_pending()
    assert [m.p_kw for m in got_a] == [7.5] and [m.p_kw for m in got_b] == [7.5]
    assert got_a[0] is not got_b[0]  # decoded separately, as on the wire
    assert got_other == []


def test_delivery_runs_after_publishing_callback_at_same_instant(ex):
    node = Node("n", executor=ex)
    trace: list[tuple[int, str]] = []
    pub = node.create_publisher(MeterReading, "chain", 10)

    def tick():
        trace.append((ex.clock.nanoseconds, "tick-start"))
        pub.publish(meter(1.0))
        trace.append((ex.clock.nanoseconds, "tick-end"))

    node.create_subscription(
        MeterReading, "chain", lambda m: trace.append((ex.clock.nanoseconds, "recv")), 10
    )
    node.create_timer(0.5, tick)
    ex.spin_for(0.5)
    assert trace == [(S // 2, "tick-start"), (S // 2, "tick-end"), (S // 2, "recv")]


def test_latency_delays_delivery():
    ex = SimExecutor(latency_sec=0.005)
    node = Node("n", executor=ex)
    pub = node.create_publisher(MeterReading, "x", 10)
    seen: list[int] = []
    node.create_subscription(MeterReading, "x", lambda m: seen.append(ex.clock.nanoseconds), 10)
    node.create_timer(1.0, lambda: pub.publish(meter(1)))
    ex.spin_for(1.004)
    assert seen == []
    ex.spin_for(0.001)
    assert seen == [S + 5 * MS]


def test_pub_sub_chain_across_nodes(ex):
    meter_node, dispatcher, arbiter = (Node(n, executor=ex) for n in ("meter_node", "dispatcher", "arbiter"))
    meter_pub = meter_node.create_publisher(MeterReading, METER, 10)
    req_pub = dispatcher.create_publisher(DispatchRequest, "/ems/dispatch/request", 10)
    count = {"n": 0}

    def sample():
        count["n"] += 1
        m = meter(100.0 * count["n"])
        m.header.stamp = meter_node.get_clock().now().to_msg()
        meter_pub.publish(m)

    def on_meter(m: MeterReading):
        req_pub.publish(
            DispatchRequest(source="dispatcher", request_id=count["n"], p_kw=m.p_kw / 2, header=m.header)
        )

    got: list[tuple[int, int, float, int]] = []
    meter_node.create_timer(0.25, sample)
    dispatcher.create_subscription(MeterReading, METER, on_meter, 10)
    arbiter.create_subscription(
        DispatchRequest,
        "/ems/dispatch/request",
        lambda r: got.append(
            (ex.clock.nanoseconds, r.request_id, r.p_kw, Time.from_msg(r.header.stamp).nanoseconds)
        ),
        10,
    )
    ex.spin_for(1.0)
    assert got == [(k * S // 4, k, 50.0 * k, k * S // 4) for k in range(1, 5)]


def test_publish_wrong_message_class_raises_type_error(ex):
    node = Node("n", executor=ex)
    pub = node.create_publisher(MeterReading, METER, 10)
    with pytest.raises(TypeError, match="MeterReading"):
        pub.publish(Alarm())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        pub.publish({"p_kw": 1.0})  # type: ignore[arg-type]
    assert pub.published == 0


# --------------------------------------------------------------------------------------------
# timers
# --------------------------------------------------------------------------------------------
def test_timer_fires_at_exact_simulated_times(ex):
    node = Node("n", executor=ex)
    fired: list[int] = []
    timer = node.create_timer(0.1, lambda: fired.append(node.get_clock().now().nanoseconds))
    ex.spin_for(3.0)
    assert fired == [k * 100 * MS for k in range(1, 31)]
    assert timer.calls == 30 and timer.timer_period_ns == 100 * MS
    assert ex.clock.nanoseconds == 3 * S


def test_timer_relative_to_start_and_creation_time():
    start = Time(1_700_000_000 * S + 123)
    ex = SimExecutor(start)
    node = Node("n", executor=ex)
    fired: list[int] = []
    node.create_timer(1.0, lambda: fired.append(ex.clock.nanoseconds))
    ex.spin_for(0.5)
    late: list[int] = []
    node.create_timer(1.0, lambda: late.append(ex.clock.nanoseconds))  # created at +0.5 s
    ex.spin_for(2.0)
    assert fired == [start.nanoseconds + S, start.nanoseconds + 2 * S]
    assert late == [start.nanoseconds + 3 * S // 2, start.nanoseconds + 5 * S // 2]


def test_multiple_timers_interleave(ex):
    node = Node("n", executor=ex)
    fired: list[tuple[int, str]] = []
    for name, period in (("a", 0.3), ("b", 0.5), ("c", 0.7)):
        node.create_timer(period, lambda name=name: fired.append((ex.clock.nanoseconds, name)))
    ex.spin_for(1.4)
    expected = [
        (300, "a"),
        (500, "b"),
        (600, "a"),
        (700, "c"),
        (900, "a"),
        (1000, "b"),
        (1200, "a"),
        (1400, "c"),
    ]
    assert fired == [(ms * MS, name) for ms, name in expected]


def test_same_time_timers_fire_in_creation_order(ex):
    node = Node("n", executor=ex)
    fired: list[str] = []
    for name in "xyz":
        node.create_timer(1.0, lambda name=name: fired.append(name))
    ex.spin_for(3.0)
    assert fired == list("xyzxyzxyz")


def test_timer_cancel_and_reset(ex):
    node = Node("n", executor=ex)
    fired: list[int] = []
    timer = node.create_timer(1.0, lambda: fired.append(ex.clock.nanoseconds))
    ex.spin_for(3.0)
    timer.cancel()
    assert timer.is_canceled()
    ex.spin_for(5.0)
    assert fired == [S, 2 * S, 3 * S]
    timer.reset()  # at t = 8 s: restarts the period from now
    assert not timer.is_canceled()
    ex.spin_for(2.5)
    assert fired == [S, 2 * S, 3 * S, 9 * S, 10 * S]


def test_timer_reset_restarts_period_of_running_timer(ex):
    node = Node("n", executor=ex)
    fired: list[int] = []
    timer = node.create_timer(1.0, lambda: fired.append(ex.clock.nanoseconds))
    ex.spin_for(0.5)
    timer.reset()
    ex.spin_for(2.0)
    assert fired == [3 * S // 2, 5 * S // 2]  # not at 1.0 s, and no double firing


def test_timer_cancel_from_its_own_callback(ex):
    node = Node("n", executor=ex)
    fired: list[int] = []

    def once():
        fired.append(ex.clock.nanoseconds)
        timer.cancel()

    timer = node.create_timer(0.25, once)
    ex.spin_for(2.0)
    assert fired == [S // 4]


def test_timer_created_in_callback(ex):
    node = Node("n", executor=ex)
    fired: list[int] = []
    node.create_timer(
        1.0,
        lambda: (
            node.create_timer(0.5, lambda: fired.append(ex.clock.nanoseconds))
            if not node.timers[1:]
            else None
        ),
    )
    ex.spin_for(2.6)
    assert fired == [3 * S // 2, 2 * S, 5 * S // 2]


@pytest.mark.parametrize("period", [0.0, -1.0])
def test_timer_period_must_be_positive(ex, period):
    node = Node("n", executor=ex)
    with pytest.raises(ValueError, match="period"):
        node.create_timer(period, lambda: None)


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(
    periods_ms=st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=4),
    total_ms=st.integers(min_value=0, max_value=3000),
    start_ns=st.integers(min_value=0, max_value=10**12),
)
def test_timer_property_counts_and_order(periods_ms, total_ms, start_ns):
    ex = SimExecutor(start_ns)
    node = Node("prop", executor=ex)
    fired: list[tuple[int, int]] = []
    for i, period in enumerate(periods_ms):
        node.create_timer(period / 1000, lambda i=i: fired.append((ex.clock.nanoseconds, i)))
    ex.spin_for(total_ms / 1000)
    times = [t for t, _ in fired]
    assert times == sorted(times), "fired timestamps must be nondecreasing"
    for i, period in enumerate(periods_ms):
        mine = [t for t, j in fired if j == i]
        n = (total_ms * MS) // (period * MS)  # floor(T / period), exactly, in integer ns
        assert len(mine) == n
        assert mine == [start_ns + k * period * MS for k in range(1, n + 1)]
    assert ex.clock.nanoseconds == start_ns + total_ms * MS


# --------------------------------------------------------------------------------------------
# QoS
# --------------------------------------------------------------------------------------------
def test_keep_last_depth_drops_oldest_and_counts(ex):
    talker, listener = Node("talker", executor=ex), Node("listener", executor=ex)
    pub = talker.create_publisher(MeterReading, METER, 10)
    shallow: list[float] = []
    deep: list[float] = []
    sub2 = listener.create_subscription(
        MeterReading, METER, lambda m: shallow.append(m.p_kw), QoSProfile(depth=2)
    )
    sub10 = listener.create_subscription(MeterReading, METER, lambda m: deep.append(m.p_kw), 10)

    def burst():
        for i in range(5):
            pub.publish(meter(float(i)))

    talker.create_timer(1.0, burst)
    ex.spin_for(1.0)
    assert shallow == [3.0, 4.0]  # the newest two survive
    assert sub2.dropped == 3 and sub2.received == 2
    assert deep == [0.0, 1.0, 2.0, 3.0, 4.0] and sub10.dropped == 0
    ex.spin_for(1.0)
    assert shallow == [3.0, 4.0, 3.0, 4.0] and sub2.dropped == 6


def test_sensor_data_profile_keeps_five(ex):
    talker, listener = Node("talker", executor=ex), Node("listener", executor=ex)
    pub = talker.create_publisher(MeterReading, METER, qos_profile_sensor_data)
    got: list[float] = []
    sub = listener.create_subscription(
        MeterReading, METER, lambda m: got.append(m.p_kw), qos_profile_sensor_data
    )
    for i in range(8):
        pub.publish(meter(float(i)))
    ex.run_pending()
    assert got == [3.0, 4.0, 5.0, 6.0, 7.0] and sub.dropped == 3


def test_keep_all_never_drops(ex):
    talker, listener = Node("talker", executor=ex), Node("listener", executor=ex)
    pub = talker.create_publisher(MeterReading, METER, 10)
    got: list[float] = []
    sub = listener.create_subscription(
        MeterReading, METER, lambda m: got.append(m.p_kw), QoSProfile(depth=1, history=HistoryPolicy.KEEP_ALL)
    )
    for i in range(50):
        pub.publish(meter(float(i)))
    ex.run_pending()
    assert got == [float(i) for i in range(50)] and sub.dropped == 0


def test_qos_depth_must_be_positive_and_int_is_depth():
    with pytest.raises(ValueError, match="depth"):
        QoSProfile(depth=0)
    ex = SimExecutor()
    sub = Node("n", executor=ex).create_subscription(MeterReading, "x", lambda m: None, 3)
    assert sub.qos.depth == 3 and sub.qos.history is HistoryPolicy.KEEP_LAST
    with pytest.raises(TypeError):
        Node("m", executor=ex).create_subscription(MeterReading, "x", lambda m: None, "10")  # type: ignore[arg-type]


def test_latched_topic_late_joiner_gets_last_sample_volatile_does_not(ex):
    planner = Node("planner", executor=ex)
    pub = planner.create_publisher(DispatchRequest, "/ems/plan/active", qos_profile_latched)
    pub.publish(DispatchRequest(request_id=1))
    pub.publish(DispatchRequest(request_id=2))
    ex.spin_for(1.0)  # nobody listening yet

    late = Node("late", executor=ex)
    latched_got: list[int] = []
    volatile_got: list[int] = []
    late.create_subscription(
        DispatchRequest, "/ems/plan/active", lambda m: latched_got.append(m.request_id), qos_profile_latched
    )
    late.create_subscription(
        DispatchRequest, "/ems/plan/active", lambda m: volatile_got.append(m.request_id), 10
    )
    ex.spin_for(1.0)
    assert latched_got == [2]  # depth 1: only the last sample, exactly once
    assert volatile_got == []
    pub.publish(DispatchRequest(request_id=3))
    ex.spin_for(1.0)
    assert latched_got == [2, 3] and volatile_got == [3]


def test_latched_depth_keeps_last_n(ex):
    planner = Node("planner", executor=ex)
    qos = QoSProfile(depth=3, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub = planner.create_publisher(DispatchRequest, "/t", qos)
    for i in range(6):
        pub.publish(DispatchRequest(request_id=i))
    got: list[int] = []
    Node("late", executor=ex).create_subscription(
        DispatchRequest, "/t", lambda m: got.append(m.request_id), qos
    )
    ex.run_pending()
    assert got == [3, 4, 5]


def test_volatile_publisher_does_not_latch(ex):
    pub = Node("p", executor=ex).create_publisher(DispatchRequest, "/t", 10)
    pub.publish(DispatchRequest(request_id=1))
    got: list[int] = []
    Node("late", executor=ex).create_subscription(
        DispatchRequest, "/t", lambda m: got.append(m.request_id), qos_profile_latched
    )
    ex.spin_for(1.0)
    assert got == []


# --------------------------------------------------------------------------------------------
# services and clients
# --------------------------------------------------------------------------------------------
def _mode_server(ex: SimExecutor) -> Node:
    server = Node("dispatcher", executor=ex)
    server.calls = []  # type: ignore[attr-defined]

    def handle(request: SetDispatchMode.Request, response: SetDispatchMode.Response):
        server.calls.append((ex.clock.nanoseconds, request.mode, request.user))  # type: ignore[attr-defined]
        response.accepted = request.user == "operator"
        response.message = f"mode {request.mode} for {request.user}"
        return response

    server.create_service(SetDispatchMode, "/ems/dispatch/set_mode", handle)
    return server


def test_service_call_blocking(ex):
    server = _mode_server(ex)
    client = Node("ui", executor=ex).create_client(SetDispatchMode, "/ems/dispatch/set_mode")
    assert client.service_is_ready() and client.wait_for_service(timeout_sec=1.0)
    response = client.call(SetDispatchMode.Request(mode=4, p_kw=50.0, user="operator"))
    assert isinstance(response, SetDispatchMode.Response)
    assert response.accepted is True and response.message == "mode 4 for operator"
    refused = client.call(SetDispatchMode.Request(mode=4, user="guest"))
    assert refused.accepted is False
    assert [c[1:] for c in server.calls] == [(4, "operator"), (4, "guest")]  # type: ignore[attr-defined]
    assert server._entities[0].handled == 2


def test_service_call_async_with_done_callback(ex):
    _mode_server(ex)
    ui = Node("ui", executor=ex)
    client = ui.create_client(SetDispatchMode, "/ems/dispatch/set_mode")
    done: list[tuple[int, bool, str]] = []
    ui.create_timer(
        1.0,
        lambda: client.call_async(SetDispatchMode.Request(mode=1, user="operator")).add_done_callback(
            lambda f: done.append((ex.clock.nanoseconds, f.result().accepted, f.result().message))
        ),
    )
    ex.spin_for(2.0)
    assert done == [(S, True, "mode 1 for operator"), (2 * S, True, "mode 1 for operator")]


def test_done_callback_added_after_completion_still_runs(ex):
    _mode_server(ex)
    client = Node("ui", executor=ex).create_client(SetDispatchMode, "/ems/dispatch/set_mode")
    future = client.call_async(SetDispatchMode.Request(mode=2, user="operator"))
    ex.run_pending()
    assert future.done() and future.exception() is None
    seen: list[bool] = []
    future.add_done_callback(lambda f: seen.append(f.result().accepted))
    ex.run_pending()
    assert seen == [True]


def test_call_to_missing_service_raises(ex):
    client = Node("ui", executor=ex).create_client(Trigger, "/nobody/home")
    assert not client.service_is_ready()
    assert client.wait_for_service(timeout_sec=0.5) is False
    with pytest.raises(ServiceCallError, match="/nobody/home"):
        client.call(Trigger.Request())
    future = client.call_async(Trigger.Request())
    errors: list[BaseException | None] = []
    future.add_done_callback(lambda f: errors.append(f.exception()))
    ex.run_pending()
    assert future.done() and isinstance(future.exception(), ServiceCallError)
    assert len(errors) == 1 and isinstance(errors[0], ServiceCallError)
    with pytest.raises(ServiceCallError):
        future.result()


def test_service_request_type_checked_and_single_server(ex):
    _mode_server(ex)
    client = Node("ui", executor=ex).create_client(SetDispatchMode, "/ems/dispatch/set_mode")
    with pytest.raises(TypeError):
        client.call_async(Trigger.Request())
    with pytest.raises(ValueError, match="already has a server"):
        Node("other", executor=ex).create_service(SetDispatchMode, "/ems/dispatch/set_mode", lambda q, r: r)


def test_service_relative_name_resolves_in_namespace(ex):
    server = Node("alarm_manager", namespace="/ems", executor=ex)
    server.create_service(
        AlarmAction, "~/action", lambda q, r: AlarmAction.Response(success=True, message=q.user)
    )
    client = Node("ui", executor=ex).create_client(AlarmAction, "/ems/alarm_manager/action")
    assert client.call(AlarmAction.Request(alarm_id=7, user="op")).message == "op"


# --------------------------------------------------------------------------------------------
# graph queries
# --------------------------------------------------------------------------------------------
def test_graph_queries(ex):
    meter_node = Node("meter_node", namespace="/site", executor=ex)
    arbiter = Node("safety_arbiter", executor=ex)
    meter_node.create_publisher(MeterReading, "poi/meter", 10)
    arbiter.create_subscription(MeterReading, METER, lambda m: None, 10)
    arbiter.create_publisher(PcsCommand, "/bess/pcs/command", 10)
    arbiter.create_publisher(MeterReading, METER, 10)
    arbiter.create_service(Trigger, "~/reset", lambda q, r: r)

    assert arbiter.get_node_names() == ["meter_node", "safety_arbiter"]
    assert arbiter.get_node_names_and_namespaces() == [("meter_node", "/site"), ("safety_arbiter", "/")]
    assert arbiter.get_topic_names_and_types() == [
        ("/bess/pcs/command", ["energizeos_msgs/msg/PcsCommand"]),
        (METER, ["energizeos_msgs/msg/MeterReading"]),
    ]
    assert arbiter.get_service_names_and_types() == [
        ("/safety_arbiter/reset", ["energizeos_msgs/srv/Trigger"])
    ]
    assert arbiter.count_publishers(METER) == 2
    assert meter_node.count_publishers("poi/meter") == 2  # relative name resolved in /site
    assert arbiter.count_subscribers(METER) == 1
    assert arbiter.count_publishers("/nothing") == 0

    meter_node.destroy_node()
    assert arbiter.get_node_names() == ["safety_arbiter"]
    assert arbiter.count_publishers(METER) == 1


# --------------------------------------------------------------------------------------------
# bad payloads never stop a node
# --------------------------------------------------------------------------------------------
def test_wrong_type_publisher_is_rejected_and_node_keeps_running(ex, caplog):
    good = Node("meter_node", executor=ex).create_publisher(MeterReading, METER, 10)
    rogue = Node("rogue", executor=ex).create_publisher(Alarm, METER, 10)
    listener = Node("listener", executor=ex)
    got: list[float] = []
    sub = listener.create_subscription(MeterReading, METER, lambda m: got.append(m.p_kw), 10)
    ticks: list[int] = []
    listener.create_timer(1.0, lambda: ticks.append(ex.clock.nanoseconds))

    with caplog.at_level(logging.ERROR):
        rogue.publish(Alarm(code="X", message="not a meter reading"))
        ex.spin_for(1.0)
    assert got == []
    assert sub.decode_errors == 1 and sub.received == 0
    assert "wrong type" in sub.last_error and "energizeos_msgs/msg/Alarm" in sub.last_error
    assert any(METER in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    assert (METER, ["energizeos_msgs/msg/Alarm", "energizeos_msgs/msg/MeterReading"]) in (
        listener.get_topic_names_and_types()
    )
    good.publish(meter(42.0))
    ex.spin_for(1.0)
    assert got == [42.0] and ticks == [S, 2 * S] and sub.decode_errors == 1


def test_wrong_type_is_detected_with_transport_latency_too():
    """With latency_sec > 0 the sender's type must still be checked (not only the payload)."""
    ex = SimExecutor(latency_sec=0.001)
    # Two distinct service response types with an identical CDR layout: bool, string.
    rogue = Node("rogue", executor=ex).create_publisher(AlarmAction.Response, "/status", 10)
    got: list[object] = []
    sub = Node("listener", executor=ex).create_subscription(
        SetDispatchMode.Response, "/status", got.append, 10
    )
    rogue.publish(AlarmAction.Response(success=True, message="from the wrong type"))
    ex.spin_for(0.01)
    assert got == [], (
        f"a {AlarmAction.Response.__msgtype__} payload was delivered to a "
        f"{SetDispatchMode.Response.__msgtype__} subscription as {got!r}: "
        "with latency the sender type is dropped"
    )
    assert sub.decode_errors == 1 and "wrong type" in sub.last_error


def test_malformed_raw_payload_counted_logged_and_followed_by_good_ones(ex, caplog):
    pub = Node("meter_node", executor=ex).create_publisher(MeterReading, METER, 10)
    listener = Node("listener", executor=ex)
    got: list[float] = []
    sub = listener.create_subscription(MeterReading, METER, lambda m: got.append(m.p_kw), 10)
    ex.spin_for(2.5)
    with caplog.at_level(logging.ERROR, logger="energizeos"):
        sub._deliver(b"garbage", "")
        ex.run_pending()
    assert sub.decode_errors == 1 and got == []
    assert "MeterReading" in sub.last_error
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    text = errors[0].getMessage()
    assert METER in text and "MeterReading" in text
    assert errors[0].name == "energizeos.node.listener"
    assert errors[0].ros_stamp == pytest.approx(2.5)  # simulated time, not wall time
    for i in range(3):
        pub.publish(meter(float(i)))
    truncated = serialize(meter(9.0))[:-3]
    sub._deliver(truncated, "")
    pub.publish(meter(10.0))
    ex.run_pending()
    assert got == [0.0, 1.0, 2.0, 10.0]
    assert sub.decode_errors == 2 and sub.received == 4


def test_garbage_flood_is_rate_limited_in_the_log(ex, caplog):
    sub = Node("listener", executor=ex).create_subscription(MeterReading, METER, lambda m: None, 1000)
    with caplog.at_level(logging.ERROR, logger="energizeos"):
        for _ in range(250):
            sub._deliver(b"\x00\x01\x00\x00junk", "")
        ex.run_pending()
    assert sub.decode_errors == 250
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 3  # 1st, 100th, 200th


# --------------------------------------------------------------------------------------------
# determinism
# --------------------------------------------------------------------------------------------
def _run_graph(latency_sec: float) -> tuple[list[tuple], int]:
    ex = SimExecutor(datetime(2025, 7, 1, 16, 0, tzinfo=UTC), latency_sec=latency_sec)
    trace: list[tuple] = []

    def log(node: Node, event: str, payload: bytes = b"") -> None:
        trace.append((ex.clock.nanoseconds, node.get_name(), event, payload))

    meter_node = Node("meter_node", namespace="/site", executor=ex)
    bms = Node("bms_node", namespace="/bess", executor=ex)
    dispatcher = Node("dispatcher", namespace="/ems", executor=ex)
    arbiter = Node("safety_arbiter", namespace="/ems", executor=ex)
    ui = Node("ui", executor=ex)

    meter_pub = meter_node.create_publisher(MeterReading, "poi/meter", qos_profile_sensor_data)
    req_pub = dispatcher.create_publisher(DispatchRequest, "dispatch/request", 10)
    cmd_pub = arbiter.create_publisher(PcsCommand, "/bess/pcs/command", qos_profile_latched)
    state = {"k": 0, "last_p": 0.0, "decisions": 0}

    def sample():
        state["k"] += 1
        m = MeterReading(source="meter_poi", p_kw=(state["k"] * 37) % 500 - 120.25)
        m.header.stamp = meter_node.get_clock().now().to_msg()
        meter_pub.publish(m)
        log(meter_node, "pub", serialize(m))

    def on_meter(m: MeterReading):
        log(dispatcher, "meter", serialize(m))
        if m.p_kw > 200:
            r = DispatchRequest(
                source="dispatcher", request_id=state["k"], p_kw=m.p_kw - 200, header=m.header
            )
            req_pub.publish(r)

    def on_request(r: DispatchRequest):
        state["last_p"] = min(r.p_kw, 250.0)
        log(arbiter, "request", serialize(r))

    def arbitrate():
        state["decisions"] += 1
        c = PcsCommand(
            source="safety_arbiter", decision_id=state["decisions"], enable=True, p_kw=state["last_p"]
        )
        c.header.stamp = arbiter.get_clock().now().to_msg()
        cmd_pub.publish(c)
        log(arbiter, "cmd", serialize(c))

    def reset(request, response):
        state["last_p"] = 0.0
        response.success, response.message = True, f"reset #{state['decisions']}"
        log(arbiter, "reset")
        return response

    def bms_tick():
        log(bms, "tick")

    meter_node.create_timer(0.2, sample)
    bms.create_timer(0.35, bms_tick)
    dispatcher.create_subscription(MeterReading, "/site/poi/meter", on_meter, qos_profile_sensor_data)
    arbiter.create_subscription(DispatchRequest, "/ems/dispatch/request", on_request, 10)
    arbiter.create_timer(0.5, arbitrate)
    arbiter.create_service(Trigger, "~/reset", reset)
    client = ui.create_client(Trigger, "/ems/safety_arbiter/reset")
    ui.create_subscription(PcsCommand, "/bess/pcs/command", lambda c: log(ui, "cmd", serialize(c)), 10)
    ui.create_timer(
        1.3,
        lambda: client.call_async(Trigger.Request()).add_done_callback(
            lambda f: log(ui, "reset-done", serialize(f.result()))
        ),
    )
    ex.spin_for(20.0)
    return trace, ex.events_processed


@pytest.mark.parametrize("latency_sec", [0.0, 0.002])
def test_same_graph_twice_gives_identical_trace(latency_sec):
    first, n1 = _run_graph(latency_sec)
    second, n2 = _run_graph(latency_sec)
    assert len(first) > 300
    assert {e[2] for e in first} == {"pub", "meter", "request", "cmd", "reset", "reset-done", "tick"}
    assert first == second and n1 == n2
    times = [e[0] for e in first]
    assert times == sorted(times)


# --------------------------------------------------------------------------------------------
# clock, Time, Duration
# --------------------------------------------------------------------------------------------
def test_time_and_duration_helpers():
    t = Time(5 * S + 250)
    assert t.seconds() == pytest.approx(5.00000025)
    assert t.to_msg() == TimeMsg(sec=5, nanosec=250)
    assert Time.from_msg(TimeMsg(sec=5, nanosec=250)) == t
    d = Duration.from_seconds(1.5)
    assert d.nanoseconds == 3 * S // 2 and d.to_seconds() == 1.5
    assert Duration.from_seconds(0.1).nanoseconds == 100 * MS
    assert t + d == Time(6 * S + S // 2 + 250)
    assert (t + d) - t == d
    assert t - d == Time(3 * S + S // 2 + 250)
    assert isinstance(t - t, Duration) and (t - t).nanoseconds == 0
    assert Time(1) < Time(2) and Duration(1) < Duration(2)
    assert Time(0).to_datetime() == datetime(1970, 1, 1, tzinfo=UTC)


def test_time_datetime_round_trip():
    when = datetime(2025, 7, 1, 16, 0, 0, tzinfo=UTC)
    t = Time.from_datetime(when)
    assert t.nanoseconds == 1_751_385_600 * S
    assert t.to_datetime() == when
    with pytest.raises(ValueError, match="naive"):
        Time.from_datetime(datetime(2025, 7, 1))


def test_time_from_datetime_is_exact_to_the_microsecond():
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    when = datetime(2024, 1, 1, 0, 0, 0, 123457, tzinfo=UTC)
    exact = (when - epoch) // timedelta(microseconds=1) * 1000
    assert Time.from_datetime(when).nanoseconds == exact, (
        f"Time.from_datetime({when.isoformat()}) = {Time.from_datetime(when).nanoseconds} ns, "
        f"expected {exact} (float rounding through timestamp())"
    )


def test_sim_clock_and_executor_start():
    clock = SimClock(Time(10))
    assert clock.now() == Time(10) and clock.nanoseconds == 10
    clock.set(20)
    with pytest.raises(ValueError, match="backwards"):
        clock.set(19)
    when = datetime(2025, 1, 6, 9, 30, tzinfo=UTC)
    ex = SimExecutor(when)
    node = Node("n", executor=ex)
    assert node.get_clock().now().to_datetime() == when
    ex.spin_until(Time.from_datetime(when + timedelta(hours=1)))
    assert node.get_clock().now().to_datetime() == when + timedelta(hours=1)
    with pytest.raises(RuntimeError):
        ex.spin()


def test_spin_once_and_next_event_time(ex):
    node = Node("n", executor=ex)
    fired: list[int] = []
    node.create_timer(2.0, lambda: fired.append(ex.clock.nanoseconds))
    assert ex.next_event_time() == 2 * S
    assert ex.spin_once(timeout_sec=1.0) is False and fired == []
    assert ex.spin_once() is True and fired == [2 * S]
    assert ex.clock.nanoseconds == 2 * S


def test_logger_uses_simulated_time_and_once(ex, caplog):
    node = Node("logger_node", namespace="/ems", executor=ex)
    ex.spin_for(12.25)
    with caplog.at_level(logging.INFO, logger="energizeos"):
        assert node.get_logger().info("hello") is True
        assert node.get_logger().warning("first", once=True) is True
        assert node.get_logger().warning("first", once=True) is False
    records = [r for r in caplog.records if r.name == "energizeos.node.ems.logger_node"]
    assert [r.getMessage() for r in records] == ["hello", "first"]
    assert records[0].ros_stamp == pytest.approx(12.25)


# --------------------------------------------------------------------------------------------
# default executor and shutdown
# --------------------------------------------------------------------------------------------
def test_default_executor_init_and_shutdown():
    runtime.shutdown()
    with pytest.raises(RuntimeError, match="no executor"):
        Node("orphan")
    ex = runtime.init(["prog", "--ros-args", "-r", "__ns:=/site"], executor=SimExecutor())
    try:
        node = Node("n")
        assert node.executor is ex and node.get_namespace() == "/site"
        pub = node.create_publisher(PcsCommand, "/bess/pcs/command", 10)
        node.add_on_shutdown(lambda: pub.publish(PcsCommand(source="n", enable=False, p_kw=0.0)))
    finally:
        runtime.shutdown()
    assert pub.published == 1  # the hook ran while the transport was still up
    assert not ex.ok() and ex.nodes == []
