"""Inter-process latency over the ZenohExecutor: 3 processes (router, publisher, subscriber) on loopback.

- Topic: a ~200-byte MeterReading published at --rate Hz (100) for --seconds (20) after a --warmup (1 s)
  that is not counted. The publisher stamps ``header.stamp`` with ``time.time_ns()`` just before
  ``publish()``; the subscriber's callback (after the executor decoded it) subtracts that from its own
  ``time.time_ns()``: one-way latency on one machine clock, executor queue and CDR decode included.
- Service: --calls (500) round trips of a Trigger served by the subscriber process, each way bounded
  by --service-budget seconds: the blocking ``Client.call()``, and ``call_async()`` + a done callback
  + ``spin_until_future_complete()`` (the callback's post wakes the executor as soon as the reply lands).

Goal (issue): topic median < 0.5 ms, p99 < 2 ms.

    .venv/bin/python bench/bench_latency.py --seconds 20 --json var/bench/latency.json
"""

from __future__ import annotations

import argparse
import sys
import time

try:
    from bench import _common as common
except ImportError:  # run as a script: bench/ is on sys.path
    import _common as common

TOPIC = "/bench/meter"
SERVICE = "/bench/trigger"
# Same length so the phase marker does not change the message size.
WARMUP, DATA, STOP = "warm", "data", "stop"
GOAL_MEDIAN_MS = 0.5
GOAL_P99_MS = 2.0


def make_reading(phase: str, seq: int):  # -> MeterReading
    from energizeos_msgs.msg import MeterReading

    msg = MeterReading(source="meter_poi_bench", quality=MeterReading.QUALITY_GOOD)
    msg.header.frame_id = phase
    msg.voltage_ln_v[:] = (7200.0, 7201.0, 7199.0)
    msg.current_a[:] = (101.0, 99.5, 100.2)
    msg.p_kw = float(seq)  # sequence number, to count losses
    msg.frequency_hz = 60.0
    return msg


def serialized_size() -> int:
    from energizeos_msgs import serialize

    return len(serialize(make_reading(DATA, 0)))


# --- child roles -------------------------------------------------------------------------------


def run_subscriber(deadline_s: float) -> None:
    from energizeos import runtime
    from energizeos.runtime import Node
    from energizeos_msgs.msg import MeterReading
    from energizeos_msgs.srv import Trigger

    executor = runtime.init([])

    class Sink(Node):
        def __init__(self, **kwargs) -> None:
            super().__init__("bench_sink", **kwargs)
            self.latencies: dict[int, int] = {}  # seq -> ns, measured phase only
            self.warmup = 0
            self.stopped = False
            self.sub = self.create_subscription(MeterReading, TOPIC, self.on_reading, 10)
            self.create_service(Trigger, SERVICE, self.on_trigger)

        def on_reading(self, msg: MeterReading) -> None:
            now = time.time_ns()
            sent = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            phase = msg.header.frame_id
            if phase == DATA:
                self.latencies[int(msg.p_kw)] = now - sent
            elif phase == WARMUP:
                self.warmup += 1
            elif phase == STOP:
                self.stopped = True

        def on_trigger(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
            response.success = True
            response.message = "ok"
            return response

    sink = Sink()
    common.emit(common.READY)
    end = time.monotonic() + deadline_s
    while not sink.stopped and time.monotonic() < end:
        executor.spin_once(0.1)
    common.emit(common.RESULT, {
        "latencies": sink.latencies,
        "warmup_received": sink.warmup,
        "stop_seen": sink.stopped,
        "queue_dropped": sink.sub.dropped,
        "decode_errors": sink.sub.decode_errors,
    })
    runtime.shutdown()


def run_publisher(seconds: float, warmup: float, rate: float, calls: int, service_budget: float) -> None:
    from energizeos import runtime
    from energizeos.runtime import Node
    from energizeos_msgs.msg import MeterReading
    from energizeos_msgs.srv import Trigger

    executor = runtime.init([])
    node = Node("bench_source")
    pub = node.create_publisher(MeterReading, TOPIC, 10)
    client = node.create_client(Trigger, SERVICE)
    t0 = time.monotonic()
    if not executor._wait_for(lambda: pub.get_subscription_count() >= 1, 15.0):
        raise SystemExit("publisher: no subscriber discovered within 15 s")
    if not client.wait_for_service(15.0):
        raise SystemExit("publisher: Trigger service not discovered within 15 s")
    discovery_s = time.monotonic() - t0

    state = {"seq": 0, "warm": 0}
    start = time.monotonic()
    msg = make_reading(WARMUP, 0)

    def tick() -> None:
        in_warmup = time.monotonic() - start < warmup
        if in_warmup:
            msg.header.frame_id = WARMUP
            state["warm"] += 1
        else:
            msg.header.frame_id = DATA
            msg.p_kw = float(state["seq"])
            state["seq"] += 1
        now = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
        pub.publish(msg)

    timer = node.create_timer(1.0 / rate, tick)
    executor.spin_for(warmup + seconds)
    timer.cancel()
    published_s = time.monotonic() - start - warmup

    # Service round trips: the public blocking Client.call(), then call_async() with a done callback,
    # whose posting wakes the spinning thread at once (see the report: call() waits on a 50 ms poll).
    request = Trigger.Request()

    def call_blocking() -> bool:
        return client.call(request, timeout_sec=2.0).success

    def call_with_wakeup() -> bool:
        future = client.call_async(request, timeout_sec=2.0)
        future.add_done_callback(lambda _f: None)
        executor.spin_until_future_complete(future, 3.0)
        if not future.done():
            raise runtime.ServiceCallError("no answer")
        return future.result().success

    service: dict[str, dict] = {}
    for name, fn in (("call", call_blocking), ("call_async_wakeup", call_with_wakeup)):
        rtts: list[int] = []
        failures = 0
        budget_end = time.monotonic() + service_budget
        for _ in range(5):  # warm the query route
            fn()
        for _ in range(calls):
            if time.monotonic() > budget_end:
                break
            t = time.perf_counter_ns()
            try:
                ok = fn()
            except runtime.ServiceCallError:
                failures += 1
                continue
            rtts.append(time.perf_counter_ns() - t)
            failures += 0 if ok else 1
        service[name] = {"rtt_ns": rtts, "failures": failures}

    msg.header.frame_id = STOP
    for _ in range(3):
        pub.publish(msg)
        executor.spin_for(0.05)
    common.emit(common.RESULT, {
        "published": state["seq"],
        "warmup_published": state["warm"],
        "publish_seconds": round(published_s, 3),
        "discovery_s": round(discovery_s, 3),
        "service": service,
        "service_calls_requested": calls,
    })
    runtime.shutdown()


# --- orchestration -----------------------------------------------------------------------------


def run(seconds: float = 20.0, warmup: float = 1.0, rate: float = 100.0, calls: int = 500,
        service_budget: float = 30.0) -> dict:
    script = common.BENCH_DIR / "bench_latency.py"
    port = common.free_loopback_port()
    env = common.node_env(port)
    with common.children() as started:
        common.start_router(started, script, port)
        sub = common.Child("subscriber", [str(script), "--role", "sub",
                                          "--deadline", str(seconds + warmup + 2 * service_budget + 30)], env)
        started.append(sub)
        sub.wait_ready(30.0)
        pub = common.Child("publisher", [
            str(script), "--role", "pub", "--seconds", str(seconds), "--warmup", str(warmup),
            "--rate", str(rate), "--calls", str(calls), "--service-budget", str(service_budget),
        ], env)
        started.append(pub)
        pub_result = pub.wait_result(seconds + warmup + 2 * service_budget + 60)
        sub_result = sub.wait_result(15.0)

    latencies = {int(k): v for k, v in sub_result["latencies"].items()}
    published = pub_result["published"]
    received = sum(1 for seq in latencies if seq < published)
    topic = common.summarize_ms(list(latencies.values()))
    service = {
        name: {**common.summarize_ms(r["rtt_ns"]), "failures": r["failures"]}
        for name, r in pub_result["service"].items()
    }
    result = {
        "message_type": "energizeos_msgs/msg/MeterReading",
        "serialized_bytes": serialized_size(),
        "rate_hz": rate,
        "seconds": seconds,
        "discovery_s": pub_result["discovery_s"],
        "topic": {
            **topic,
            "published": published,
            "received": received,
            "lost": published - received,
            "warmup_published": pub_result["warmup_published"],
            "warmup_received": sub_result["warmup_received"],
            "queue_dropped": sub_result["queue_dropped"],
            "decode_errors": sub_result["decode_errors"],
            "achieved_rate_hz": round(published / pub_result["publish_seconds"], 1),
        },
        "service": {"calls_requested": pub_result["service_calls_requested"], **service},
        "goal": {"median_ms": GOAL_MEDIAN_MS, "p99_ms": GOAL_P99_MS},
    }
    result["goal"]["met"] = bool(
        topic.get("count") and topic["median_ms"] < GOAL_MEDIAN_MS and topic["p99_ms"] < GOAL_P99_MS
    )
    return result


def print_report(result: dict) -> None:
    t, s = result["topic"], result["service"]
    print(f"message: {result['message_type']}, {result['serialized_bytes']} bytes CDR, "
          f"{result['rate_hz']:g} Hz for {result['seconds']:g} s (achieved {t['achieved_rate_hz']} Hz); "
          f"discovery {result['discovery_s']} s")
    if t.get("count"):
        print(f"topic one-way latency: median {t['median_ms']:.3f} ms, p90 {t['p90_ms']:.3f} ms, "
              f"p99 {t['p99_ms']:.3f} ms, max {t['max_ms']:.3f} ms (min {t['min_ms']:.3f})")
    print(f"topic messages: published {t['published']}, received {t['received']}, lost {t['lost']}, "
          f"queue-dropped {t['queue_dropped']}, decode errors {t['decode_errors']}")
    labels = {"call": "Client.call()", "call_async_wakeup": "call_async + done callback"}
    for name, label in labels.items():
        r = s.get(name, {})
        if r.get("count"):
            print(f"service Trigger round trip, {label}: {r['count']} calls, median {r['median_ms']:.3f} ms, "
                  f"p90 {r['p90_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms, max {r['max_ms']:.3f} ms, "
                  f"failures {r['failures']}")
        else:
            print(f"service, {label}: no successful call ({r.get('failures', '?')} failures)")
    goal = result["goal"]
    print(f"goal median < {goal['median_ms']} ms and p99 < {goal['p99_ms']} ms: "
          f"{'MET' if goal['met'] else 'NOT MET'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured publishing time (default 20)")
    parser.add_argument("--warmup", type=float, default=1.0, help="uncounted publishing before (default 1)")
    parser.add_argument("--rate", type=float, default=100.0, help="publish rate in Hz (default 100)")
    parser.add_argument("--calls", type=int, default=500, help="service round trips (default 500)")
    parser.add_argument("--service-budget", type=float, default=30.0,
                        help="stop the service phase after this many seconds (default 30)")
    parser.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    parser.add_argument("--role", choices=["router", "pub", "sub"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, default=120.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.role == "router":
        common.run_router(args.port)
        return 0
    if args.role == "sub":
        run_subscriber(args.deadline)
        return 0
    if args.role == "pub":
        run_publisher(args.seconds, args.warmup, args.rate, args.calls, args.service_budget)
        return 0

    result = run(args.seconds, args.warmup, args.rate, args.calls, args.service_budget)
    print_report(result)
    common.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
