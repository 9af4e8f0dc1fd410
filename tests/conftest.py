"""Fixtures for multi-process tests: a real Zenoh router on a free loopback port, node processes."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.ui_app"]  # the app_db fixture for the app tests

REPO = Path(__file__).resolve().parents[1]
GRAPH_NODES = Path(__file__).resolve().parent / "graph_nodes"
ENERGIZEOS = str(Path(sys.executable).parent / "energizeos")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SIM_DEVICES = ("meter", "relay", "bms", "pcs")


def free_fixed_port() -> int:
    """A free loopback port below Linux's ephemeral range (32768+). A port the kernel handed out as free
    can be given again to any process listening on port 0 — the launched nodes' Zenoh sessions do —
    before the plant binds it (seen in CI: the plant respawned 27 times on a taken port)."""
    rng = random.Random()
    while True:
        port = rng.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def write_sim_site_config(path: Path, rest: str = "") -> Path:
    """A config for the simulated site: every device on a free loopback port, then ``rest`` (YAML)."""
    path.write_text("devices:\n" + "".join(f"  {d}:\n    port: {free_fixed_port()}\n" for d in SIM_DEVICES)
                    + rest)
    return path


@pytest.fixture
def router(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """A Zenoh router in this process; children and in-test executors connect to it."""
    from energizeos.runtime.zenoh_executor import open_router

    endpoint = f"tcp/127.0.0.1:{free_port()}"
    session = open_router([endpoint])
    monkeypatch.setenv("ENERGIZEOS_ZENOH_CONNECT", endpoint)
    monkeypatch.setenv("ENERGIZEOS_HOME", str(tmp_path / "home"))
    yield endpoint
    session.close()


class Proc:
    """A child process whose output is collected line by line (for waiting on log lines)."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        self.popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, cwd=REPO)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_for_line(self, text: str, timeout: float = 15.0, after: int = 0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in self.lines[after:]:
                if text in line:
                    return line
            if self.popen.poll() is not None and not any(text in ln for ln in self.lines[after:]):
                time.sleep(0.2)  # let the pump read the last lines
                if not any(text in ln for ln in self.lines[after:]):
                    break
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r} within {timeout} s; output:\n" + "\n".join(self.lines[-40:]))

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Processes a test starts; each is ended by PID at teardown."""
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.stop()


def start_node(procs: list[Proc], name: str, *params: str) -> Proc:
    cmd = [sys.executable, "-m", "energizeos.launch.node_process", str(GRAPH_NODES / "graph_node.py"),
           "--ros-args", "-r", f"__node:={name}"]
    for p in params:
        cmd += ["-p", p]
    proc = Proc(cmd)
    procs.append(proc)
    return proc


# --- databases: every storage test runs on SQLite and on a real PostgreSQL server ------------------
@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """One real PostgreSQL server for the session (127.0.0.1, temp dir, stopped by PID at the end)."""
    from energizeos.records.scratch_postgres import ScratchPostgres

    server = ScratchPostgres().start()
    yield server
    server.stop()


_db_counter = iter(range(1, 1_000_000))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'records.db'}"
    server = request.getfixturevalue("postgres")
    return server.create_database(f"test_{os.getpid()}_{next(_db_counter)}")


@pytest.fixture
def migrated_engine(db_url: str) -> Iterator[object]:
    """An engine on a fresh database (each backend) with the schema migrated to the newest revision."""
    from energizeos.records.db import init_db, make_engine

    engine = make_engine(db_url)
    init_db(engine)
    yield engine
    engine.dispose()


# --- a real browser: Debian's chromium driven by Playwright (tests/test_browser.py, test_fleet_browser.py) ----
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
