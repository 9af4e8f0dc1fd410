"""Fast-forward: plant time per wall second with the real device nodes in the deterministic
executor (in-memory registers, same maps and codecs as over Modbus, CDR on every message).

    .venv/bin/python bench/bench_sim_day.py [--hours 2] [--poll-hz 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

try:
    from bench import _common as common
except ImportError:  # run as a script
    import _common as common

from energizeos.nodes.bms_node import BmsNode
from energizeos.nodes.device_link import InMemoryLink
from energizeos.nodes.meter_node import MeterNode
from energizeos.nodes.pcs_node import PcsNode
from energizeos.nodes.relay_node import RelayNode
from energizeos.nodes.sim_plant import SimPlant
from energizeos.runtime import SimExecutor


def run(hours: float, poll_hz: float, step_hz: float) -> dict:
    ex = SimExecutor(start=datetime(2025, 7, 15, tzinfo=UTC))
    plant = SimPlant(executor=ex, parameter_overrides={"serve_modbus": False, "step_hz": step_hz})
    images = plant.site.images
    nodes = [cls(executor=ex, link=InMemoryLink(images[name]), parameter_overrides={"poll_hz": poll_hz})
             for cls, name in ((MeterNode, "meter"), (RelayNode, "relay"), (BmsNode, "bms"), (PcsNode, "pcs"))]
    started = time.perf_counter()
    ex.spin_for(hours * 3600.0)
    wall = time.perf_counter() - started
    polls = sum(n.polls for n in nodes)
    return {"plant_hours": hours, "poll_hz": poll_hz, "step_hz": step_hz, "wall_s": round(wall, 2),
            "events": ex.events_processed, "device_polls": polls,
            "plant_seconds_per_wall_second": round(hours * 3600.0 / wall, 1),
            "wall_s_per_plant_day": round(wall * 24.0 / hours, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--poll-hz", type=float, default=1.0, help="device poll rate (field default: meter 5 Hz)")
    parser.add_argument("--step-hz", type=float, default=1.0, help="plant physics steps per second")
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    result = {"coarse": run(args.hours * 4, 0.1, 0.1), "fast": run(args.hours, args.poll_hz, args.step_hz),
              "field_rates": run(args.hours / 4, 5.0, 10.0)}
    for label, r in result.items():
        print(f"{label:12s} poll {r['poll_hz']} Hz, physics {r['step_hz']} Hz: {r['plant_hours']} h of plant time "
              f"in {r['wall_s']} s ({r['plant_seconds_per_wall_second']}x real time; "
              f"{r['wall_s_per_plant_day']} s per plant day; {r['device_polls']} polls)")
    if args.json:
        common.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
