"""The FAT target: the whole site in the deterministic executor — the plant, the four device nodes on
in-memory registers (the same maps and codecs as over Modbus), the safety arbiter and the dispatcher,
configured from the site file — with the commissioning runner beside them. Simulated time: the
enter-service delays cost nothing, and a run gives the same numbers every time."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from energizeos.commissioning.driver import AskFn
from energizeos.commissioning.model import Procedure
from energizeos.commissioning.recorder import Recorder
from energizeos.commissioning.results import RunResult, StepResult
from energizeos.commissioning.runner import CommissioningRunner
from energizeos.commissioning.settings import from_site_config
from energizeos.nodes.bms_node import BmsNode
from energizeos.nodes.device_link import InMemoryLink
from energizeos.nodes.dispatcher import Dispatcher
from energizeos.nodes.meter_node import MeterNode
from energizeos.nodes.pcs_node import PcsNode
from energizeos.nodes.relay_node import RelayNode
from energizeos.nodes.safety_arbiter import SafetyArbiter
from energizeos.nodes.sim_plant import SimPlant
from energizeos.runtime import SimExecutor
from energizeos.runtime.logging import node_logs_from
from energizeos.site_config import SiteConfig, device_node_parameters

START = datetime(2025, 7, 15, 20, 0, tzinfo=UTC)  # noon Pacific standard time, a summer weekday: ~800 kW load
NODE_CLASSES = {"meter": MeterNode, "relay": RelayNode, "bms": BmsNode, "pcs": PcsNode}
ENDPOINT_KEYS = ("host", "port", "device_id", "timeout_s")  # meaningless with in-memory registers


@dataclass
class SimSiteRun:
    ex: SimExecutor
    plant: SimPlant
    runner: CommissioningRunner
    nodes: dict[str, Any]


def build(config: SiteConfig, procedures: list[Procedure], operator: str, recorder: Recorder | None = None,
          witness: str = "", start: datetime = START, plant_step_hz: float = 20.0,
          on_step: Callable[[StepResult], None] | None = None, ask: AskFn | None = None) -> SimSiteRun:
    params = device_node_parameters(config)
    ex = SimExecutor(start=start)
    sim = params.get("sim_plant", {})
    plant = SimPlant(executor=ex, parameter_overrides={
        "serve_modbus": False, "step_hz": plant_step_hz,
        **{k: v for k, v in sim.items() if k in ("annual_kwh", "seed", "pv_kw_peak", "load_profile")}})
    nodes: dict[str, Any] = {}
    for device, cls in NODE_CLASSES.items():
        own = {k: v for k, v in params[f"{device}_node"].items() if k not in ENDPOINT_KEYS}
        nodes[device] = cls(executor=ex, link=InMemoryLink(plant.site.images[device]), parameter_overrides=own)
    nodes["arbiter"] = SafetyArbiter(executor=ex, parameter_overrides=params["safety_arbiter"])
    nodes["dispatcher"] = Dispatcher(executor=ex, parameter_overrides=params["dispatcher"])
    links = {d: InMemoryLink(plant.site.images[d]) for d in NODE_CLASSES}  # the runner's own, independent reads
    runner = CommissioningRunner(procedures, from_site_config(config), operator, links, recorder, witness=witness,
                                 on_step=on_step, ask=ask, executor=ex)
    for node in [plant, runner, *nodes.values()]:
        node.check_unused_overrides()
    return SimSiteRun(ex, plant, runner, nodes)


def run(config: SiteConfig, procedures: list[Procedure], operator: str, recorder: Recorder | None = None,
        witness: str = "", limit_s: float = 4 * 3600.0, quiet: bool = True,
        on_step: Callable[[StepResult], None] | None = None) -> RunResult:
    """Run the procedures to their end (or ``limit_s`` of plant time) and return the result."""
    # the faults injected here are expected: their warnings and errors would drown the run's lines
    with node_logs_from(logging.CRITICAL) if quiet else nullcontext():
        site = build(config, procedures, operator, recorder, witness, on_step=on_step)
        chunk_s, elapsed = 10.0, 0.0
        while not site.runner.done and elapsed < limit_s:
            site.ex.spin_for(chunk_s)
            elapsed += chunk_s
        if not site.runner.done:  # stop safely, as a live run does
            site.runner.abort(f"the run did not finish within {limit_s:g} s of plant time")
            site.ex.spin_for(120.0)
        site.ex.shutdown()
    return site.runner.result
