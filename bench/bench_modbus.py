"""Modbus TCP poll round trip per device, and the CPU the simulated plant uses to serve them.

The plant runs as its own process (the sim_plant node: physics at 10 Hz and four pymodbus
servers on loopback). This process polls each device with the same reads its device node makes:
first back to back for round-trip times, then all four at 10 Hz while the plant's CPU time is
sampled with psutil.

    .venv/bin/python bench/bench_modbus.py [--polls 300] [--seconds 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import psutil

try:
    from bench import _common as common
except ImportError:  # run as a script
    import _common as common

from energizeos.nodes.device_link import ModbusTcpLink
from energizeos.sim.maps.sel import load_map
from energizeos.sim.maps.sunspec import SunSpecLayout

DEVICES = ("meter", "relay", "bms", "pcs")


def device_reads(name: str, link: ModbusTcpLink) -> list[tuple[int, int]]:
    """The (address, count) reads the device node issues in one poll."""
    if name in ("meter", "relay"):
        return load_map("sel735" if name == "meter" else "sel700g").read_blocks()
    layout = SunSpecLayout.from_model_chain(link.read)
    models = (802, 803) if name == "bms" else (701, 702, 704)
    return [block for m in models for block in layout.read_blocks(m)]


def poll(link: ModbusTcpLink, reads: list[tuple[int, int]]) -> None:
    for address, count in reads:
        link.read(address, count)



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--polls", type=int, default=300, help="back-to-back polls per device (RTT)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of 10 Hz polling (CPU)")
    parser.add_argument("--json", default="", help="write the result here")
    args = parser.parse_args(argv)

    ports = {d: common.free_loopback_port() for d in DEVICES}
    params = [f"{d}_port:={p}" for d, p in ports.items()]
    plant_args = ["-m", "energizeos.launch.node_process", "energizeos.nodes.sim_plant", "--ros-args"]
    for p in params:
        plant_args += ["-p", p]
    router = f"tcp/127.0.0.1:{common.free_loopback_port()}"  # nobody listens: the plant needs no graph here
    plant = common.Child("sim_plant", plant_args, env={"ENERGIZEOS_ZENOH_CONNECT": router})
    try:
        links = {d: ModbusTcpLink("127.0.0.1", ports[d], timeout_s=1.0) for d in DEVICES}
        deadline = time.monotonic() + 30
        reads: dict[str, list[tuple[int, int]]] = {}
        while len(reads) < len(DEVICES):
            for d in DEVICES:
                if d not in reads:
                    try:
                        reads[d] = device_reads(d, links[d])
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
            time.sleep(0.2)

        rtt: dict[str, dict] = {}
        for d in DEVICES:
            samples = []
            for _ in range(args.polls):
                t = time.perf_counter()
                poll(links[d], reads[d])
                samples.append((time.perf_counter() - t) * 1e3)
            rtt[d] = {"requests_per_poll": len(reads[d]), "registers": sum(c for _a, c in reads[d]),
                      "median_ms": round(statistics.median(samples), 3),
                      "p99_ms": round(common.percentile(sorted(samples), 99), 3),
                      "max_ms": round(max(samples), 3), "polls": len(samples)}

        proc = psutil.Process(plant.pid)
        idle_cpu = proc.cpu_times()
        time.sleep(5.0)
        idle_used = sum(proc.cpu_times()[:2]) - sum(idle_cpu[:2])
        start_cpu, start = proc.cpu_times(), time.monotonic()
        polls = 0
        next_tick = time.monotonic()
        while time.monotonic() - start < args.seconds:
            for d in DEVICES:
                poll(links[d], reads[d])
            polls += 1
            next_tick += 0.1
            time.sleep(max(0.0, next_tick - time.monotonic()))
        wall = time.monotonic() - start
        used = sum(proc.cpu_times()[:2]) - sum(start_cpu[:2])
        result = {
            "rtt": rtt,
            "serve_10hz": {"seconds": round(wall, 1), "rounds": polls, "achieved_hz": round(polls / wall, 2),
                           "plant_cpu_pct_of_one_core": round(100 * used / wall, 1),
                           "plant_idle_cpu_pct": round(100 * idle_used / 5.0, 1)},
        }
        result["goal"] = {
            "p99_ms_max": max(r["p99_ms"] for r in rtt.values()),
            "met": max(r["p99_ms"] for r in rtt.values()) <= 10.0
            and result["serve_10hz"]["plant_cpu_pct_of_one_core"] < 30.0,
        }
        for link in links.values():
            link.close()
    finally:
        plant.stop()
    for d, r in result["rtt"].items():
        print(f"{d:6s} {r['requests_per_poll']} request(s), {r['registers']:3d} registers: "
              f"median {r['median_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  max {r['max_ms']:.3f} ms")
    s = result["serve_10hz"]
    print(f"plant CPU serving all four at {s['achieved_hz']} Hz: {s['plant_cpu_pct_of_one_core']} % of one core "
          f"(idle, physics only: {s['plant_idle_cpu_pct']} %)")
    if args.json:
        common.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
