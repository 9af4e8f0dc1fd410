"""Run the processes of a launch file: prefixed logs, respawn, ordered shutdown.

The launcher also hosts the Zenoh router the nodes discover each other through (as rmw_zenohd
does for ROS 2), unless one is already listening on the endpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from energizeos.launch.description import LaunchError
from energizeos.launch.loader import ProcessSpec, write_params_file
from energizeos.launch.node_process import EX_CONFIG

STARTUP_GRACE_S = 5.0  # a node exiting with EX_CONFIG this soon after start fails the whole launch
STOP_TIMEOUT_S = 5.0  # SIGINT, then SIGTERM, then SIGKILL, each after this long


@dataclass
class Managed:
    spec: ProcessSpec
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    respawns: int = 0
    tail: list[str] = field(default_factory=list)  # last lines, quoted when it fails


class LaunchRunner:
    def __init__(self, specs: list[ProcessSpec], run_dir: Path, *, router: str | None,
                 out: TextIO | None = None) -> None:
        self.managed = [Managed(s) for s in specs]
        self.run_dir = run_dir
        self.router_endpoint = router
        self.out = out or sys.stdout
        self._out_lock = threading.Lock()
        self._stop = threading.Event()
        self._router = None
        self.failure: str | None = None

    # --- output -----------------------------------------------------------------------------
    def log(self, source: str, line: str) -> None:
        with self._out_lock:
            self.out.write(f"[{source}] {line}\n")
            self.out.flush()

    def _pump(self, managed: Managed, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            managed.tail = [*managed.tail, line][-20:]
            self.log(managed.spec.name, line)

    # --- processes --------------------------------------------------------------------------
    def _env(self, spec: ProcessSpec) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        if self.router_endpoint:
            env.setdefault("ENERGIZEOS_ZENOH_CONNECT", self.router_endpoint)
        env.update(spec.env)
        return env

    def _start(self, managed: Managed) -> None:
        spec = managed.spec
        cmd = list(spec.cmd)
        if spec.is_node and spec.params:
            cmd += ["--params-file", str(write_params_file(spec, self.run_dir))]
        managed.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            env=self._env(spec), cwd=spec.cwd, start_new_session=True,  # Ctrl-C reaches us, not them
        )
        managed.started_at = time.monotonic()
        managed.restart_at = None
        self.log("launch", f"started {spec.name} pid={managed.proc.pid}")
        threading.Thread(target=self._pump, args=(managed, managed.proc), daemon=True).start()

    def _open_router(self) -> None:
        if not self.router_endpoint:
            return
        from energizeos.runtime.zenoh_executor import open_router

        try:
            self._router = open_router([self.router_endpoint])
            self.log("launch", f"zenoh router listening on {self.router_endpoint}")
        except Exception as exc:
            self.log("launch", f"using the router already on {self.router_endpoint} ({type(exc).__name__})")

    def request_stop(self, *_args: object) -> None:
        self._stop.set()

    def run(self) -> int:
        """Start everything, supervise until Ctrl-C/SIGTERM or a fatal error, stop in order."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self.request_stop)
            signal.signal(signal.SIGTERM, self.request_stop)
        self._open_router()
        try:
            for managed in self.managed:
                self._start(managed)
            while not self._stop.wait(0.1):
                self._supervise()
        finally:
            self.stop_all()
            if self._router is not None:
                self._router.close()
        if self.failure:
            self.log("launch", f"FAILED: {self.failure}")
            return 2
        return 0

    def _supervise(self) -> None:
        now = time.monotonic()
        for managed in self.managed:
            proc, spec = managed.proc, managed.spec
            if managed.restart_at is not None and now >= managed.restart_at:
                managed.respawns += 1
                self.log("launch", f"respawning {spec.name} (respawn #{managed.respawns})")
                self._start(managed)
                continue
            if proc is None or proc.poll() is None or managed.restart_at is not None:
                continue
            code = proc.returncode
            if code == EX_CONFIG:
                detail = next((t for t in reversed(managed.tail) if "configuration error" in t), f"exit {code}")
                self.failure = f"{spec.source}: {spec.name} cannot start: {detail}"
                self._stop.set()
                return
            self.log("launch", f"{spec.name} pid={proc.pid} exited with code {code}")
            if spec.respawn:
                managed.restart_at = now + spec.respawn_delay
            else:
                managed.proc = None

    def stop_all(self) -> None:
        """Stop in shutdown_order groups (lowest first), each SIGINT -> SIGTERM -> SIGKILL."""
        for order in sorted({m.spec.shutdown_order for m in self.managed}):
            group = [m for m in self.managed if m.spec.shutdown_order == order and m.proc and m.proc.poll() is None]
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
                alive = [m for m in group if m.proc and m.proc.poll() is None]
                if not alive:
                    break
                for m in alive:
                    assert m.proc is not None
                    try:
                        m.proc.send_signal(sig)  # by PID: only processes this launch started
                    except ProcessLookupError:
                        pass
                deadline = time.monotonic() + STOP_TIMEOUT_S
                while time.monotonic() < deadline and any(m.proc and m.proc.poll() is None for m in alive):
                    time.sleep(0.05)
            for m in group:
                if m.proc is not None:
                    self.log("launch", f"stopped {m.spec.name} (exit {m.proc.returncode})")


def run_launch_file(path: str, arguments: dict[str, str], run_dir: Path, router: str | None) -> int:
    from energizeos.launch.loader import load_launch_file

    try:
        specs = load_launch_file(path, arguments)
    except LaunchError as exc:
        print(f"[launch] error: {exc}", file=sys.stderr)
        return 2
    return LaunchRunner(specs, run_dir, router=router).run()
