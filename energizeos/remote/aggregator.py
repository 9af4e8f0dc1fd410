"""The fleet aggregator: a Zenoh router for the sites and remote parties, and the writer of the fleet tables.

Zenoh threads only queue what arrives; one worker thread decodes, checks, stores (one transaction
per batch) and acknowledges, so a site's records are handled strictly in arrival order. A batch
is refused before it touches the database when its key and its ``site`` field disagree or the
site has no party (the router's access-control list already stops a party publishing for a site
that is not its own). When the database is away, nothing is acknowledged, and the sites keep their
records and send them again.
"""

from __future__ import annotations

import queue
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import zenoh
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from energizeos.records.db import error_line
from energizeos.remote import fleet_store, protocol
from energizeos.remote.config import ServerSettings
from energizeos.remote.receiver import SiteStream
from energizeos.remote.zenoh_link import router_config

LAG_WINDOW = 5000  # lag samples kept for the statistics


@dataclass
class Stats:
    batches: int = 0
    records: int = 0
    duplicates: int = 0
    refused_gap: int = 0
    lost: int = 0  # records a site had pruned before they were stored here (a database restored from backup)
    rejected: int = 0  # malformed, or for a site with no party
    db_errors: int = 0
    lags_s: deque[float] = field(default_factory=lambda: deque(maxlen=LAG_WINDOW))
    last_problem: str = ""

    def summary(self) -> dict[str, float | int | str]:
        lags = sorted(self.lags_s)
        return {"batches": self.batches, "records": self.records, "duplicates": self.duplicates, "lost": self.lost,
                "refused_gap": self.refused_gap, "rejected": self.rejected, "db_errors": self.db_errors,
                "lag_median_s": round(statistics.median(lags), 4) if lags else 0.0,
                "lag_p99_s": round(lags[int(0.99 * (len(lags) - 1))], 4) if lags else 0.0,
                "last_problem": self.last_problem}


class Aggregator:
    def __init__(self, settings: ServerSettings, engine: Engine, clock: Callable[[], float] = time.time,
                 log: Callable[[str], None] = print) -> None:
        self.settings, self.engine, self.clock, self.log = settings, engine, clock, log
        self.site_users = settings.site_users()
        self.streams: dict[str, SiteStream] = {
            c.site_id: SiteStream(c.epoch, c.have) for c in fleet_store.load_cursors(engine).values()}
        self.stats = Stats()
        self._inbox: queue.Queue[tuple[str, str, bytes] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self.session: zenoh.Session | None = None
        self._subs: list = []

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Aggregator:
        self.session = zenoh.open(router_config(self.settings))
        # One subscription per site and leaf, not fleet/*/...: the access-control list passes a
        # declaration on to a site only when its key lies inside that site's own keys.
        for site in sorted(self.site_users):
            for leaf in ("batch", "status"):
                self._subs.append(self.session.declare_subscriber(
                    protocol.key(site, leaf),
                    lambda s, leaf=leaf: self._inbox.put((leaf, str(s.key_expr), s.payload.to_bytes()))))
        self._worker = threading.Thread(target=self._run, name="fleet-writer", daemon=True)
        self._worker.start()
        return self

    def stop(self) -> None:
        self._inbox.put(None)
        if self._worker is not None:
            self._worker.join(timeout=10)
        if self.session is not None:
            self.session.close()

    def __enter__(self) -> Aggregator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- work -----------------------------------------------------------------------------------
    def _run(self) -> None:
        while (item := self._inbox.get()) is not None:
            leaf, key_expr, payload = item
            try:
                self.handle(leaf, key_expr, payload)
            except Exception as exc:  # one bad message must not stop the fleet's writer
                self.stats.rejected += 1
                self._problem(f"{key_expr}: {type(exc).__name__}: {exc}")

    def _problem(self, text: str) -> None:
        if text != self.stats.last_problem:
            self.log(f"fleet: {text}")
        self.stats.last_problem = text

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), tz=UTC)

    def handle(self, leaf: str, key_expr: str, payload: bytes) -> None:
        """One message from a site (called by the worker; tests call it directly)."""
        try:
            site = protocol.site_of(key_expr)
            msg = protocol.decode_batch(payload) if leaf == "batch" else protocol.decode_status(payload)
        except protocol.ProtocolError as exc:
            self.stats.rejected += 1
            self._problem(f"{key_expr}: {exc}")
            return
        if msg.site != site or site not in self.site_users:
            self.stats.rejected += 1
            self._problem(f"{key_expr}: message for site {msg.site!r} refused (no such site party, or the key "
                          "names another site)")
            return
        name = self.settings.site_names.get(site, site)
        if isinstance(msg, protocol.StatusMsg):
            try:
                fleet_store.note_status(self.engine, site, msg.epoch, msg.head, self._now(), name)
            except SQLAlchemyError as exc:
                self.stats.db_errors += 1
                self._problem(f"database: {error_line(exc)}")
            return
        self._on_batch(site, msg, name)

    def _on_batch(self, site: str, batch: protocol.BatchMsg, name: str) -> None:
        stream = self.streams.setdefault(site, SiteStream())
        verdict = stream.accept(batch)
        self.stats.batches += 1
        if verdict.ack.gap:
            self.stats.refused_gap += 1
        elif verdict.store or verdict.new_epoch or verdict.lost:
            if verdict.lost:
                self._problem(f"site {site}: {verdict.lost} record(s) before {batch.floor} are no longer held by the "
                              "edge (pruned there after an acknowledgement this database does not have); resuming")
            try:
                fleet_store.store_batch(self.engine, site, batch.epoch, batch.head, verdict.store, self._now(), name)
            except SQLAlchemyError as exc:  # not acknowledged: the site sends it again
                self.stats.db_errors += 1
                self._problem(f"database: {error_line(exc)}")
                return
            stream.committed(verdict)
            self.stats.records += len(verdict.store)
            self.stats.lost += verdict.lost
            if verdict.store:
                self.stats.lags_s.append(self.clock() - verdict.store[-1].time_ns / 1e9)
        self.stats.duplicates += len(batch.records) - len(verdict.store) if not verdict.ack.gap else 0
        if self.session is not None:
            self.session.put(protocol.key(site, "ack"), protocol.encode_ack(verdict.ack))

    def backlog(self) -> int:
        return self._inbox.qsize()
