"""Control latency over the multi-process graph: a POI meter reading arriving at the dispatcher
to the PcsCommand leaving the safety arbiter (dispatcher -> request -> arbiter -> command).

Starts `energizeos launch sim_site` (every node its own process, devices over Modbus TCP) with
the dispatcher event-driven on the meter (10 Hz), and matches DispatchRequest -> ArbiterDecision
-> PcsCommand by ids. The request's stamp is taken by the dispatcher as the reading arrives; the
command's stamp as it leaves the arbiter (one machine, one clock).

    .venv/bin/python bench/bench_control_latency.py [--seconds 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    from bench import _common as common
except ImportError:  # run as a script
    import _common as common

from energizeos.runtime import Node, Time
from energizeos.runtime.zenoh_executor import ZenohExecutor
from energizeos_msgs.msg import ArbiterDecision, DispatchRequest, PcsCommand


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)

    ports = {d: common.free_loopback_port() for d in ("meter", "relay", "bms", "pcs")}
    router = f"tcp/127.0.0.1:{common.free_loopback_port()}"
    with tempfile.TemporaryDirectory(prefix="energizeos-bench-") as tmp:
        config = Path(tmp) / "site.yaml"
        devices = "".join(f"  {d}:\n    port: {p}\n" + ("    poll_hz: 10\n" if d == "meter" else "")
                          for d, p in ports.items())
        config.write_text(
            "devices:\n" + devices
            + "ems:\n  dispatch:\n    mode: export_limit\n    event_driven: true\n"
            + "  safety:\n    es_delay_s: 1\n    es_ramp_s: 1\nsimulation:\n  step_hz: 20\n")
        env = {**os.environ, "ENERGIZEOS_ZENOH_CONNECT": router, "ENERGIZEOS_HOME": tmp}
        launch = subprocess.Popen([str(Path(sys.executable).parent / "energizeos"), "launch", "sim_site",
                                   f"site_config:={config}", "ui:=false", "--router", router],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=common.REPO_ROOT)
        os.environ["ENERGIZEOS_ZENOH_CONNECT"] = router
        try:
            time.sleep(6.0)  # processes start, devices discovered, enter-service delay passes
            ex = ZenohExecutor()
            node = Node("latency_probe", executor=ex)
            requests: dict[int, int] = {}
            decisions: dict[int, int] = {}
            commands: dict[int, int] = {}
            def stamp(m) -> int:
                return Time.from_msg(m.header.stamp).nanoseconds

            node.create_subscription(DispatchRequest, "/ems/dispatch/request",
                                     lambda m: requests.setdefault(m.request_id, stamp(m)), 1000)
            node.create_subscription(ArbiterDecision, "/ems/arbiter/decision",
                                     lambda m: decisions.setdefault(m.decision_id, m.request_id), 1000)
            node.create_subscription(PcsCommand, "/bess/pcs/command",
                                     lambda m: commands.setdefault(m.decision_id, stamp(m)), 1000)
            ex.spin_for(args.seconds)
            ex.shutdown()
        finally:
            launch.send_signal(signal.SIGINT)
            try:
                launch.wait(30)
            except subprocess.TimeoutExpired:
                launch.kill()
    first_command: dict[int, int] = {}
    for decision_id, request_id in sorted(decisions.items()):
        if decision_id in commands and request_id in requests and request_id not in first_command:
            first_command[request_id] = commands[decision_id]
    latencies = [(first_command[r] - requests[r]) / 1e6 for r in first_command]
    if not latencies:
        print("no matched request -> command pairs: the graph did not run")
        return 1
    result = {"samples": len(latencies), "median_ms": round(statistics.median(latencies), 3),
              "p90_ms": round(common.percentile(sorted(latencies), 90), 3),
              "p99_ms": round(common.percentile(sorted(latencies), 99), 3),
              "max_ms": round(max(latencies), 3), "requests": len(requests), "decisions": len(decisions)}
    result["goal"] = {"p99_ms_max": 20.0, "met": result["p99_ms"] <= 20.0}
    print(f"meter reading at dispatcher -> PcsCommand out of arbiter: median {result['median_ms']} ms, "
          f"p90 {result['p90_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms "
          f"({result['samples']} samples)")
    if args.json:
        common.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
