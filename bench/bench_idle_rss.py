"""Memory of an idle node process over the ZenohExecutor, with reference processes for context.

Starts a router, then one process that creates one Node with a publisher, a subscription (on the same
topic) and a 1 Hz timer that publishes, and spins. After --idle seconds (3) its RSS, USS, PSS, peak
RSS (VmHWM), thread count and CPU use over the idle window are read with psutil. The same is measured
for a bare ``python``, ``python -c "import zenoh"``, and a process that imports the runtime and
only opens a Zenoh peer session to the router, to show where the memory goes. Measured processes
run as ``python -c CODE`` so no benchmark scaffolding is counted.

Goal (issue): idle node RSS < 60 MB.

    .venv/bin/python bench/bench_idle_rss.py --json var/bench/rss.json
"""

from __future__ import annotations

import argparse
import sys
import time

try:
    from bench import _common as common
except ImportError:  # run as a script: bench/ is on sys.path
    import _common as common

GOAL_RSS_MB = 60.0
MB = 1024 * 1024

_WAIT = """
import signal, threading
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
print("READY", flush=True)
stop.wait()
"""

BARE_PYTHON = _WAIT
IMPORT_ZENOH = "import zenoh\n" + _WAIT
ZENOH_SESSION = """
from energizeos.runtime.zenoh_executor import ZenohSettings
import zenoh
session = zenoh.open(ZenohSettings.from_env().to_config())
""" + _WAIT + "session.close()\n"
IDLE_NODE = """
from energizeos import runtime
from energizeos.runtime import Node
from energizeos_msgs.msg import MeterReading


class IdleNode(Node):
    def __init__(self, **kwargs):
        super().__init__("idle_node", **kwargs)
        self.received = 0
        self.pub = self.create_publisher(MeterReading, "/bench/idle", 10)
        self.create_subscription(MeterReading, "/bench/idle", self.on_reading, 10)
        self.create_timer(1.0, self.tick)

    def tick(self):
        self.pub.publish(MeterReading(source="idle_node"))

    def on_reading(self, msg):
        self.received += 1


runtime.init([])
node = IdleNode()
print("READY", flush=True)
runtime.spin(node)
runtime.shutdown()
"""

PROCESSES = {
    "python (bare)": BARE_PYTHON,
    "python -c 'import zenoh'": IMPORT_ZENOH,
    "energizeos + zenoh session": ZENOH_SESSION,
    "idle node": IDLE_NODE,
}


def _hwm_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _mb(value: int | None) -> float | None:
    return None if value is None else round(value / MB, 1)


def measure(name: str, code: str, idle_s: float, env: dict[str, str]) -> dict:
    import psutil

    with common.children() as started:
        child = common.Child(name.replace(" ", "_"), ["-c", code], env)
        started.append(child)
        child.wait_ready(30.0)
        proc = psutil.Process(child.pid)
        cpu0 = proc.cpu_times()
        time.sleep(idle_s)
        if child.proc.poll() is not None:
            raise RuntimeError(f"{name} exited while idle:\n{child.log_tail()}")
        cpu1 = proc.cpu_times()
        info = proc.memory_full_info()
        result = {
            "rss_mb": _mb(info.rss),
            "uss_mb": _mb(getattr(info, "uss", None)),
            "pss_mb": _mb(getattr(info, "pss", None)),
            "threads": proc.num_threads(),
            "idle_cpu_pct": round(100 * ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / idle_s, 2),
        }
        result["peak_rss_mb"] = _mb(_hwm_bytes(child.pid))
    return result


def run(idle_s: float = 3.0) -> dict:
    script = common.BENCH_DIR / "bench_idle_rss.py"
    port = common.free_loopback_port()
    env = common.node_env(port)
    with common.children() as started:
        common.start_router(started, script, port)
        processes = {name: measure(name, code, idle_s, env) for name, code in PROCESSES.items()}
    node = processes["idle node"]
    return {
        "idle_s": idle_s,
        "python": sys.version.split()[0],
        "processes": processes,
        "goal": {"rss_mb": GOAL_RSS_MB, "met": node["rss_mb"] < GOAL_RSS_MB},
    }


def print_report(result: dict) -> None:
    print(f"after {result['idle_s']:g} s idle (Python {result['python']}):")
    for name, r in result["processes"].items():
        print(f"  {name:<28} RSS {r['rss_mb']:6.1f} MB  USS {r['uss_mb']} MB  PSS {r['pss_mb']} MB  "
              f"peak {r['peak_rss_mb']} MB  threads {r['threads']:3d}  idle CPU {r['idle_cpu_pct']:.2f}%")
    goal = result["goal"]
    print(f"goal idle node RSS < {goal['rss_mb']:g} MB: {'MET' if goal['met'] else 'NOT MET'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=float, default=3.0, help="seconds idle before measuring (default 3)")
    parser.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    parser.add_argument("--role", choices=["router"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "router":
        common.run_router(args.port)
        return 0
    result = run(args.idle)
    print_report(result)
    common.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
