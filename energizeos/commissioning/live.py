"""The SAT target (and FAT against the launched simulated site): the runner in this process over
Zenoh, the site's nodes in theirs, the devices read back over their own Modbus TCP endpoints. Where
the site answers /sim/inject, conditions are injected; on real equipment the operator is prompted."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from energizeos.commissioning.model import Procedure
from energizeos.commissioning.recorder import Recorder
from energizeos.commissioning.results import RunResult, StepResult
from energizeos.commissioning.runner import CommissioningRunner
from energizeos.commissioning.settings import from_site_config
from energizeos.nodes.device_link import ModbusTcpLink
from energizeos.site_config import SiteConfig


class ConsoleOperator:
    """Operator prompts on the console, answered in a thread so the node keeps spinning meanwhile."""

    def __init__(self, read: Callable[[str], str] = input, write: Callable[[str], None] = print) -> None:
        self._read, self._write = read, write
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="operator")

    def ask(self, prompt: str) -> Future:
        def answer() -> bool:
            self._write(f"\nOPERATOR: {prompt}")
            reply = self._read("Press Enter when done, or type 'no' if it cannot be done: ")
            return reply.strip().lower() not in ("no", "n")

        return self._pool.submit(answer)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def run(config: SiteConfig, procedures: list[Procedure], operator: str, recorder: Recorder | None = None,
        witness: str = "", ask: Callable | None = None, limit_s: float = 4 * 3600.0,
        on_step: Callable[[StepResult], None] | None = None, safe_stop_limit_s: float = 60.0) -> RunResult:
    """Run over Zenoh until the procedures end, ``limit_s`` passes or Ctrl-C (both stop safely)."""
    from energizeos.runtime.zenoh_executor import ZenohExecutor

    d = config.devices
    links = {name: ModbusTcpLink(ep.host, ep.port, ep.device_id, ep.timeout_s)
             for name, ep in (("meter", d.meter), ("relay", d.relay), ("bms", d.bms), ("pcs", d.pcs))}
    ex = ZenohExecutor()
    try:
        runner = CommissioningRunner(procedures, from_site_config(config), operator, links, recorder, ask=ask,
                                     witness=witness, on_step=on_step, executor=ex)
        deadline = time.monotonic() + limit_s
        try:
            while not runner.done and time.monotonic() < deadline:
                ex.spin_once(0.1)
            if not runner.done:
                runner.abort(f"the run did not finish within {limit_s:g} s")
        except KeyboardInterrupt:
            runner.abort("stopped by the operator (Ctrl-C)")
        stop_by = time.monotonic() + safe_stop_limit_s
        while not runner.done and time.monotonic() < stop_by:  # the safe stop still acts on the site
            ex.spin_once(0.1)
        return runner.result
    finally:
        ex.shutdown()
        for link in links.values():
            link.close()
