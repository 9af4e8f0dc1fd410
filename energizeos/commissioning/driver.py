"""A step's action is a generator of waits; ``Driver`` resumes it when what it waits for has happened.

The action says *what* it waits for (a time, a condition with a timeout, a service answer, an
operator's confirmation); the driver is polled by a timer on the node clock, so the same action
runs in the deterministic SimExecutor (simulated time: a 300 s enter-service delay costs nothing)
and over Zenoh on the wall clock. Nothing here blocks or reads a clock of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol

NS = 1_000_000_000
MAX_RESUMES_PER_POLL = 10_000  # a bound, so an action that never waits cannot stall the executor


class StepFailed(Exception):
    """The step cannot go on (a timeout, a refused service call): its reason is the verdict's."""


class FutureLike(Protocol):
    def done(self) -> bool: ...
    def result(self) -> Any: ...


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Until:
    """Resumes with the seconds waited once ``condition()`` holds; after ``timeout_s`` a required wait
    fails the step, an optional one resumes with None."""

    condition: Callable[[], bool]
    timeout_s: float
    what: str
    required: bool = True


@dataclass(frozen=True)
class Await:
    """Resumes with the future's result (a service answer); its error or a timeout fails the step."""

    future: FutureLike
    what: str
    timeout_s: float = 30.0


@dataclass(frozen=True)
class Ask:
    """An operator prompt (real equipment): resumes with True when the operator has done it."""

    prompt: str


Wait = Sleep | Until | Await | Ask
Steps = Generator[Wait, Any, Any]
AskFn = Callable[[str], FutureLike]


class Driver:
    """Runs one action generator to its end; ``poll(now_ns)`` returns True once it has finished.

    After finishing, ``error`` is "" (the action ran to its end) or why it stopped.
    """

    def __init__(self, steps: Steps, ask: AskFn | None = None) -> None:
        self._steps = steps
        self._ask = ask
        self._wait: Wait | None = None
        self._since_ns = 0
        self._asked: FutureLike | None = None
        self._started = False
        self.finished = False
        self.error = ""
        self.value: Any = None  # what the generator returned

    def poll(self, now_ns: int) -> bool:
        for _ in range(MAX_RESUMES_PER_POLL):
            if self.finished:
                return True
            if not self._started:
                self._started = True
                self._resume(now_ns, lambda: self._steps.send(None))
                continue
            ready, resume = self._check(now_ns)
            if not ready:
                return False
            self._resume(now_ns, resume)
        self._stop(f"the action resumed {MAX_RESUMES_PER_POLL} times without waiting")
        return True

    def _check(self, now_ns: int) -> tuple[bool, Callable[[], Wait]]:
        wait, waited = self._wait, (now_ns - self._since_ns) / NS
        if isinstance(wait, Sleep):
            return waited >= wait.seconds - 1e-9, lambda: self._steps.send(None)
        if isinstance(wait, Until):
            if wait.condition():
                return True, lambda: self._steps.send(waited)
            if waited < wait.timeout_s - 1e-9:
                return False, _never
            if wait.required:
                failure = StepFailed(f"timed out after {wait.timeout_s:g} s waiting for {wait.what}")
                return True, lambda: self._steps.throw(failure)
            return True, lambda: self._steps.send(None)
        if isinstance(wait, Ask):
            if self._asked is None:
                if self._ask is None:
                    failure = StepFailed(f"this step needs an operator: {wait.prompt}")
                    return True, lambda: self._steps.throw(failure)
                self._asked = self._ask(wait.prompt)
            wait = Await(self._asked, f"the operator: {wait.prompt}", timeout_s=float("inf"))
        assert isinstance(wait, Await)
        if wait.future.done():
            try:
                result = wait.future.result()
            except Exception as exc:  # a service error answer, a broken operator console
                failure = StepFailed(f"{wait.what}: {exc}")
                return True, lambda: self._steps.throw(failure)
            return True, lambda: self._steps.send(result)
        if waited >= wait.timeout_s:
            failure = StepFailed(f"no answer from {wait.what} within {wait.timeout_s:g} s")
            return True, lambda: self._steps.throw(failure)
        return False, _never

    def _resume(self, now_ns: int, resume: Callable[[], Wait]) -> None:
        try:
            wait = resume()
        except StopIteration as stop:
            self.value = stop.value
            self._stop("")
            return
        except StepFailed as exc:
            self._stop(str(exc))
            return
        except Exception as exc:  # a bug in an action must fail its step, not the runner
            self._stop(f"{type(exc).__name__}: {exc}")
            return
        if not isinstance(wait, Sleep | Until | Await | Ask):
            self._steps.close()
            self._stop(f"the action yielded {type(wait).__name__}, not a wait")
            return
        self._wait, self._since_ns, self._asked = wait, now_ns, None

    def _stop(self, error: str) -> None:
        self.finished, self.error = True, error


def _never() -> Wait:
    raise AssertionError("resumed a wait that is not ready")
