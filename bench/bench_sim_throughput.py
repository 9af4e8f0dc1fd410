"""Throughput of the deterministic SimExecutor (one process, simulated clock), in callbacks per wall second.

(a) timers: --timer-nodes (100) nodes, each with a 10 ms timer doing trivial work (a counter).
(b) pub/sub: --pairs (50) talker nodes, each with a 10 ms timer publishing a MeterReading on its own
    topic, and as many listener nodes; counted callbacks = timer (publish) + subscription (deliver)
    callbacks. CDR encode and decode are included, as on the wire.

Each scenario is built fresh and run --repeat (5) times; only ``spin_for()`` is timed.
Goal (issue): >= 200,000 timer callbacks/s.

    .venv/bin/python bench/bench_sim_throughput.py --json var/bench/sim.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

try:
    from bench import _common as common
except ImportError:  # run as a script: bench/ is on sys.path
    import _common as common

from energizeos.runtime import Node, SimExecutor
from energizeos_msgs.msg import MeterReading

GOAL_TIMER_CALLBACKS_PER_S = 200_000
PERIOD_S = 0.01


class Ticker(Node):
    def __init__(self, index: int, **kwargs) -> None:
        super().__init__(f"ticker_{index}", **kwargs)
        self.count = 0
        self.create_timer(PERIOD_S, self.tick)

    def tick(self) -> None:
        self.count += 1


class Talker(Node):
    def __init__(self, index: int, **kwargs) -> None:
        super().__init__(f"talker_{index}", **kwargs)
        self.pub = self.create_publisher(MeterReading, f"/bench/meter_{index}", 10)
        self.msg = MeterReading(source=f"meter_{index}")
        self.msg.header.frame_id = "poi"
        self.create_timer(PERIOD_S, self.tick)

    def tick(self) -> None:
        stamp = self.get_clock().now().nanoseconds
        self.msg.header.stamp.sec, self.msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        self.msg.p_kw += 1.0
        self.pub.publish(self.msg)


class Listener(Node):
    def __init__(self, index: int, **kwargs) -> None:
        super().__init__(f"listener_{index}", **kwargs)
        self.count = 0
        self.last_kw = 0.0
        self.create_subscription(MeterReading, f"/bench/meter_{index}", self.on_reading, 10)

    def on_reading(self, msg: MeterReading) -> None:
        self.count += 1
        self.last_kw = msg.p_kw


def timers_once(nodes: int, sim_seconds: float) -> dict:
    executor = SimExecutor()
    tickers = [Ticker(i, executor=executor) for i in range(nodes)]
    t = time.perf_counter()
    executor.spin_for(sim_seconds)
    wall = time.perf_counter() - t
    callbacks = sum(n.count for n in tickers)
    expected = nodes * round(sim_seconds / PERIOD_S)
    if callbacks != expected:
        raise RuntimeError(f"timers: {callbacks} callbacks, expected {expected}")
    return {"callbacks": callbacks, "wall_s": wall, "per_s": callbacks / wall}


def pubsub_once(pairs: int, sim_seconds: float) -> dict:
    executor = SimExecutor()
    talkers = [Talker(i, executor=executor) for i in range(pairs)]
    listeners = [Listener(i, executor=executor) for i in range(pairs)]
    t = time.perf_counter()
    executor.spin_for(sim_seconds)
    wall = time.perf_counter() - t
    published = sum(n.pub.published for n in talkers)
    delivered = sum(n.count for n in listeners)
    if delivered != published:
        raise RuntimeError(f"pub/sub: {published} published but {delivered} delivered")
    callbacks = published + delivered
    return {"callbacks": callbacks, "published": published, "delivered": delivered, "wall_s": wall,
            "per_s": callbacks / wall, "messages_per_s": delivered / wall}


def _summary(runs: list[dict], key: str = "per_s") -> dict:
    values = [r[key] for r in runs]
    return {"median": round(statistics.median(values)), "min": round(min(values)), "max": round(max(values))}


def run(repeat: int = 5, timer_nodes: int = 100, timer_sim_s: float = 100.0, pairs: int = 50,
        pubsub_sim_s: float = 10.0) -> dict:
    timer_runs = [timers_once(timer_nodes, timer_sim_s) for _ in range(repeat)]
    pubsub_runs = [pubsub_once(pairs, pubsub_sim_s) for _ in range(repeat)]
    timers = {
        "nodes": timer_nodes,
        "period_ms": PERIOD_S * 1e3,
        "sim_seconds": timer_sim_s,
        "callbacks_per_run": timer_runs[0]["callbacks"],
        "callbacks_per_s": _summary(timer_runs),
        "wall_s": [round(r["wall_s"], 3) for r in timer_runs],
    }
    pubsub = {
        "pairs": pairs,
        "period_ms": PERIOD_S * 1e3,
        "sim_seconds": pubsub_sim_s,
        "callbacks_per_run": pubsub_runs[0]["callbacks"],
        "callbacks_per_s": _summary(pubsub_runs),
        "messages_per_s": _summary(pubsub_runs, "messages_per_s"),
        "wall_s": [round(r["wall_s"], 3) for r in pubsub_runs],
    }
    return {
        "repeat": repeat,
        "timers": timers,
        "pubsub": pubsub,
        "goal": {
            "timer_callbacks_per_s": GOAL_TIMER_CALLBACKS_PER_S,
            "met": timers["callbacks_per_s"]["median"] >= GOAL_TIMER_CALLBACKS_PER_S,
        },
    }


def print_report(result: dict) -> None:
    t, p = result["timers"], result["pubsub"]
    tc, pc, pm = t["callbacks_per_s"], p["callbacks_per_s"], p["messages_per_s"]
    print(f"timers: {t['nodes']} nodes x {t['period_ms']:g} ms, {t['sim_seconds']:g} sim s "
          f"({t['callbacks_per_run']:,} callbacks/run), {result['repeat']} runs: "
          f"median {tc['median']:,} callbacks/s (min {tc['min']:,}, max {tc['max']:,})")
    print(f"pub/sub: {p['pairs']} talker/listener pairs x {p['period_ms']:g} ms, {p['sim_seconds']:g} sim s "
          f"({p['callbacks_per_run']:,} callbacks/run): median {pc['median']:,} callbacks/s "
          f"(min {pc['min']:,}, max {pc['max']:,}) = {pm['median']:,} messages/s")
    goal = result["goal"]
    verdict = "MET" if goal["met"] else "NOT MET"
    print(f"goal >= {goal['timer_callbacks_per_s']:,} timer callbacks/s: {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per scenario (default 5)")
    parser.add_argument("--timer-nodes", type=int, default=100, help="timer nodes (default 100)")
    parser.add_argument("--timer-sim-seconds", type=float, default=100.0,
                        help="simulated seconds per timer run (default 100)")
    parser.add_argument("--pairs", type=int, default=50, help="talker/listener pairs (default 50)")
    parser.add_argument("--pubsub-sim-seconds", type=float, default=10.0,
                        help="simulated seconds per pub/sub run (default 10)")
    parser.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    args = parser.parse_args(argv)
    result = run(args.repeat, args.timer_nodes, args.timer_sim_seconds, args.pairs, args.pubsub_sim_seconds)
    print_report(result)
    common.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
