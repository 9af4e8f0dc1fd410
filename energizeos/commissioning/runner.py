"""commissioning_runner: a node that runs procedures step by step against a site.

A timer on the node clock polls the current step's action (a generator of waits, see ``driver``);
the node never blocks, so it runs in the deterministic SimExecutor (simulated time) and over Zenoh
(wall clock) alike. Each finished step is judged against its acceptance criteria and recorded; a
failing step stops the run through the safe stop (standby, every injected condition cleared, the
PCS at 0 kW) and the remaining steps are recorded as skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from energizeos.commissioning.context import Injected, StepContext
from energizeos.commissioning.criteria import evaluate
from energizeos.commissioning.driver import AskFn, Await, Driver, StepFailed, Steps, Until
from energizeos.commissioning.model import Procedure, Step
from energizeos.commissioning.recorder import Recorder
from energizeos.commissioning.registry import actions
from energizeos.commissioning.results import FAIL, PASS, SKIPPED, RunResult, StepResult
from energizeos.commissioning.safe_stop import safe_stop
from energizeos.commissioning.settings import SiteSettings
from energizeos.commissioning.site_io import DEVICES, SiteIO
from energizeos.nodes.device_link import RegisterLink
from energizeos.runtime import Node, ParameterDescriptor


class CommissioningRunner(Node):
    def __init__(self, procedures: list[Procedure], settings: SiteSettings, operator: str,
                 links: Mapping[str, RegisterLink] | None = None, recorder: Recorder | None = None,
                 ask: AskFn | None = None, witness: str = "", wall_ns: Callable[[], int] = time.time_ns,
                 on_step: Callable[[StepResult], None] | None = None, **kwargs: Any) -> None:
        super().__init__("commissioning_runner", **kwargs)
        tick_s = self.declare_parameter("tick_s", 0.05, ParameterDescriptor(
            "how often the current step is resumed", min_value=0.01, max_value=1.0)).value
        self.connect_timeout_s = self.declare_parameter("connect_timeout_s", 30.0, ParameterDescriptor(
            "longest wait for every device topic and the arbiter before the run is aborted", min_value=1.0)).value
        self.io = SiteIO(self, links)
        self.settings, self.operator, self.recorder, self.ask, self.wall_ns = settings, operator, recorder, ask, wall_ns
        self.result = RunResult([p.id for p in procedures], operator, witness)
        self._plan: list[tuple[Procedure, Step]] = [(p, s) for p in procedures for s in p.steps]
        self._index = -1  # the step running now
        self._faults: list[Injected] = []
        self._shared: dict[str, Any] = {}
        self._driver: Driver | None = Driver(self._prepare(), ask)
        self._phase = "prepare"  # prepare -> step / cleanup ... -> finish, or safe_stop -> finish
        self._ctx: StepContext | None = None
        self._current: StepResult | None = None
        self._report: dict[str, Any] = {}
        self._aborted = ""
        self.on_step = on_step
        self.done = False
        self._timer = self.create_timer(tick_s, self._tick)

    # --- the sequence ----------------------------------------------------------------------------
    def _tick(self) -> None:
        if self.done or self._driver is None or not self._driver.poll(self.get_clock().now().nanoseconds):
            return
        driver, self._driver = self._driver, None
        if self._phase == "prepare":
            if driver.error:
                self._finish("aborted", f"the site is not ready for commissioning: {driver.error}")
                return
            self.result.site_mode = "simulated (fault injection)" if self.io.can_inject() else \
                "equipment (operator prompts)"
            if self.recorder is not None:
                self.result.run_id = self.recorder.start_run(self.result)
            self._next_step()
        elif self._phase == "step":
            self._judge(driver)
        elif self._phase == "cleanup":
            if self._report.get("safe", True):
                self._next_step()
            else:
                self.result.safe_stop = dict(self._report)
                self._finish("failed", "the site could not be returned to a safe state after "
                                       f"{self._plan[self._index][0].id}: {'; '.join(self._report['problems'])}")
        elif self._phase == "safe_stop":
            self.result.safe_stop = dict(self._report)
            self._skip_rest()
            self._finish("aborted" if self._aborted else "failed", self._aborted)

    def _prepare(self) -> Steps:
        """Every device topic and the arbiter heard from, then dispatch to standby."""
        yield Until(lambda: all(self.io.last(d) is not None for d in (*DEVICES, "interlocks")),
                    self.connect_timeout_s, "the device topics and the arbiter's interlocks")
        answer = yield Await(self.io.set_mode("standby", 0.0, self.operator), "/ems/dispatch/mode")
        if not answer.accepted:
            raise StepFailed(f"dispatch to standby refused: {answer.message}")

    def _next_step(self) -> None:
        """After the preparation, a passed step or a cleanup: the next step, or the cleanup that closes
        each procedure (the site is left as found before the next one starts), or the end."""
        current = self._plan[self._index][0].id if self._index >= 0 else None
        following = self._plan[self._index + 1][0].id if self._index + 1 < len(self._plan) else None
        if current is not None and following != current and self._phase != "cleanup":
            self._start_cleanup()
            return
        if following is None:
            self._finish("passed")
            return
        self._index += 1
        procedure, step = self._plan[self._index]
        if following != current:
            self._shared = {}
        spec = actions()[step.do.action]
        self._ctx = StepContext(self.io, step, self.settings, self.operator, self._faults, self._shared,
                                self.recorder.keep_file if self.recorder is not None else None)
        self._current = StepResult(len(self.result.steps) + 1, procedure.id, step.id, step.title, "running",
                                   site_time_start_s=self.io.now(), started_ns=self.wall_ns())
        self.get_logger().info(f"step {self._current.number} {self._current.name}: {step.title}")
        self._phase = "step"
        self._driver = Driver(spec.run(self._ctx, spec.params.model_validate(step.do.params)), self.ask)

    def _start_cleanup(self) -> None:
        self._phase, self._report = "cleanup", {}
        self._driver = Driver(safe_stop(self.io, self._faults, self.operator, self._report), self.ask)

    def _judge(self, driver: Driver) -> None:
        assert self._ctx is not None and self._current is not None
        step, result = self._ctx.step, self._current
        result.measured = dict(self._ctx.measured)
        result.checks = [evaluate(c, result.measured, self.settings.as_dict()) for c in step.acceptance]
        missing = [name for name in step.evidence if name not in result.measured]
        failed = [c.criterion + f" (measured {c.value})" for c in result.checks if not c.ok]
        reasons = [driver.error] if driver.error else []
        reasons += [f"not met: {'; '.join(failed)}"] if failed else []
        reasons += [f"evidence not recorded: {', '.join(missing)}"] if missing else []
        result.status, result.reason = (FAIL, " | ".join(reasons)) if reasons else (PASS, "")
        result.site_time_end_s, result.finished_ns = self.io.now(), self.wall_ns()
        self._store(result)
        self.get_logger().info(f"step {result.number} {result.name}: {result.status}"
                               + (f": {result.reason}" if result.reason else ""))
        if result.status == FAIL:
            self._phase, self._report = "safe_stop", {}
            self._driver = Driver(safe_stop(self.io, self._faults, self.operator, self._report), self.ask)
        else:
            self._next_step()

    def abort(self, why: str) -> None:
        """Stop now (Ctrl-C, a deadline): the running step fails with ``why`` and the safe stop runs."""
        if self.done or self._aborted:
            return
        self._aborted = why
        if self._phase == "prepare":  # nothing was done to the site yet
            self._finish("aborted", why)
            return
        if self._phase == "step" and self._current is not None and self._ctx is not None:
            self._current.measured = dict(self._ctx.measured)
            self._current.status, self._current.reason = FAIL, f"aborted: {why}"
            self._current.site_time_end_s, self._current.finished_ns = self.io.now(), self.wall_ns()
            self._store(self._current)
        self._phase, self._report = "safe_stop", {}
        self._driver = Driver(safe_stop(self.io, self._faults, self.operator, self._report), self.ask)

    def _skip_rest(self) -> None:
        for procedure, step in self._plan[self._index + 1:]:
            now = self.wall_ns()
            self._store(StepResult(len(self.result.steps) + 1, procedure.id, step.id, step.title, SKIPPED,
                                   reason=f"not run: step {self._current.name if self._current else '?'} failed",
                                   started_ns=now, finished_ns=now))

    def _store(self, result: StepResult) -> None:
        self.result.steps.append(result)
        if self.recorder is not None and self.result.run_id is not None:
            self.recorder.record_step(result)
        if self.on_step is not None:
            self.on_step(result)

    def _finish(self, status: str, why: str = "") -> None:
        self.result.status, self.result.reason = status, why
        if why:
            self.get_logger().error(why)
        if self.recorder is not None and self.result.run_id is not None:
            self.recorder.finish_run(self.result)
        self._timer.cancel()
        self.done = True
        self.get_logger().info(f"commissioning run {self.result.run_id}: {status}")
