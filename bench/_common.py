"""Helpers shared by the benchmarks: child processes on loopback, readiness lines, statistics."""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
READY = "READY"
RESULT = "RESULT "


def free_loopback_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def emit(tag: str, payload: object | None = None) -> None:
    """Child side: one protocol line on stdout (READY, or RESULT + JSON)."""
    line = tag if payload is None else f"{tag}{json.dumps(payload)}"
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Child:
    """One child process (``sys.executable`` + args); stdout lines read by a thread, stderr to a file."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix=f"bench-{name}-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=REPO_ROOT,
        )
        self.pid = self.proc.pid
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_line(self, prefix: str, timeout: float) -> str:
        """The first stdout line starting with ``prefix``; RuntimeError on timeout or exit."""
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise RuntimeError(f"{self.name} (pid {self.pid}) exited before {prefix!r}:\n"
                                   f"{self.log_tail()}")
            if line.startswith(prefix):
                return line
        raise RuntimeError(f"{self.name} (pid {self.pid}) gave no {prefix!r} within {timeout} s:\n"
                           f"{self.log_tail()}")

    def wait_ready(self, timeout: float = 20.0) -> None:
        self.wait_line(READY, timeout)

    def wait_result(self, timeout: float) -> dict:
        return json.loads(self.wait_line(RESULT, timeout)[len(RESULT):])

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = Path(self._log.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 5.0) -> None:
        stop_process(self.proc, timeout)
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)


def stop_process(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """Terminate this one PID, kill it if it has not exited within ``timeout`` s, and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


@contextlib.contextmanager
def children() -> Iterator[list[Child]]:
    """Every Child appended to the list is stopped (in reverse order) on the way out."""
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in reversed(started):
            child.stop()


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an already sorted sequence."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(q / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def summarize_ms(values_ns: Sequence[int]) -> dict[str, float]:
    values = sorted(v / 1e6 for v in values_ns)
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "min_ms": round(values[0], 4),
        "median_ms": round(statistics.median(values), 4),
        "p90_ms": round(percentile(values, 90), 4),
        "p99_ms": round(percentile(values, 99), 4),
        "max_ms": round(values[-1], 4),
        "mean_ms": round(statistics.fmean(values), 4),
    }


def write_json(path: str | None, data: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=2) + "\n")


def run_router(port: int) -> None:
    """Child role: a Zenoh router on 127.0.0.1:port until SIGTERM / SIGINT."""
    import signal

    from energizeos.runtime.zenoh_executor import open_router

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    session = open_router([f"tcp/127.0.0.1:{port}"])
    emit(READY)
    stop.wait()
    session.close()


def start_router(started: list[Child], script: Path, port: int) -> Child:
    router = Child("router", [str(script), "--role", "router", "--port", str(port)])
    started.append(router)
    router.wait_ready()
    return router


def node_env(port: int) -> dict[str, str]:
    return {"ENERGIZEOS_ZENOH_CONNECT": f"tcp/127.0.0.1:{port}", "ENERGIZEOS_ZENOH_LISTEN": "tcp/127.0.0.1:0"}
