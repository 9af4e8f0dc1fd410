"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` into a temp dir, listen on
127.0.0.1 only, stop by PID. PostgreSQL refuses to run as root, so as root it runs as ``postgres``."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def postgres_bin_dir() -> Path:
    """The newest Debian PostgreSQL install (``/usr/lib/postgresql/<major>/bin``)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: "
                           "install Debian's 'postgresql' package (make test does)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ScratchPostgres:
    """``with ScratchPostgres() as pg: engine = make_engine(pg.url("mydb"))``."""

    def __init__(self, durable: bool = False) -> None:
        """``durable``: keep PostgreSQL's default fsync and synchronous commit (benchmarks); tests turn
        them off for speed, since a test database need not survive a power cut."""
        self.durable = durable
        self.bin = postgres_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="energizeos-pg-"))
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self._user = "postgres" if os.geteuid() == 0 else None

    def _run_as(self) -> dict:
        return {"user": self._user, "group": self._user} if self._user else {}

    def start(self, timeout_s: float = 30.0) -> ScratchPostgres:
        data, sock = self.root / "data", self.root / "sock"
        sock.mkdir()
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chmod(self.root, 0o755)
            for path in (self.root, sock):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        subprocess.run([str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                        "--no-sync"], check=True, capture_output=True, **self._run_as())
        return self._launch(timeout_s)

    def _launch(self, timeout_s: float) -> ScratchPostgres:
        data, sock = self.root / "data", self.root / "sock"
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - the server writes it until it stops
        fast = [] if self.durable else ["-c", "fsync=off", "-c", "synchronous_commit=off",
                                        "-c", "full_page_writes=off"]
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(self.port), "-k", str(sock),
             *fast],
            stdout=log, stderr=subprocess.STDOUT, **self._run_as())
        log.close()
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited at start: {(self.root / 'server.log').read_text()[-2000:]}")
            try:
                self._admin("SELECT 1")
                return self
            except Exception:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"PostgreSQL did not accept connections within {timeout_s:g} s")

    def pause(self) -> None:
        """Stop the server (an outage), keeping its data for ``resume()``."""
        self._shutdown()

    def resume(self, timeout_s: float = 30.0) -> None:
        self._launch(timeout_s)

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True, connect_timeout=2) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self, name: str) -> str:
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name {name!r}: letters, digits and _ only")
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def socket_url(self, name: str) -> str:
        """The same database through the server's Unix socket: reachable from another network namespace."""
        return f"postgresql+psycopg://postgres@/{name}?host={self.root / 'sock'}&port={self.port}"

    def _shutdown(self) -> None:
        """Fast shutdown of the server this object started: SIGINT to its PID."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        """Shut the server down and remove its files."""
        self._shutdown()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ScratchPostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
