"""The fleet aggregator: a Zenoh router for the sites and remote parties, and the writer of the fleet tables.

Zenoh threads only queue what arrives; one worker thread decodes, checks, stores and acknowledges,
so a site's records are handled strictly in arrival order. What has queued up while a transaction
ran is written together in the next one (a group commit: one commit per batch held the fleet to the
database's commit rate); a group that fails is done again one message at a time, so a bad message
costs only itself. Acknowledgements go out only after the commit that holds their records. A batch
is refused before it touches the database when its key and its ``site`` field disagree or the
site has no party (the router's access-control list already stops a party publishing for a site
that is not its own). When the database is away, nothing is acknowledged, and the sites keep their
records and send them again.
"""

from __future__ import annotations

import dataclasses
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
from energizeos.remote.receiver import SiteStream, Verdict
from energizeos.remote.zenoh_link import router_config

LAG_WINDOW = 5000  # lag samples kept for the statistics
MAX_INBOX = 5000  # queued messages (at most ~500 records each) before new batches are dropped
GROUP_MAX_MESSAGES = 100  # written in one transaction at most (when that many have queued up)
GROUP_MAX_BYTES = 4_000_000  # and about this much JSON (a full batch of 500 records is under 1 MB)


@dataclass
class Stats:
    batches: int = 0
    records: int = 0
    duplicates: int = 0
    refused_gap: int = 0
    dropped: int = 0  # batches dropped on arrival because the writer was that far behind (sent again)
    malformed_rows: int = 0  # telemetry rows / alarm transitions / report files kept only raw (fleet_store.store_many)
    lost: int = 0  # records a site had pruned before they were stored here (a database restored from backup)
    rejected: int = 0  # malformed, or for a site with no party
    db_errors: int = 0
    lags_s: deque[float] = field(default_factory=lambda: deque(maxlen=LAG_WINDOW))
    last_problem: str = ""

    def summary(self) -> dict[str, float | int | str]:
        lags = sorted(self.lags_s)
        return {"batches": self.batches, "records": self.records, "duplicates": self.duplicates, "lost": self.lost,
                "malformed_rows": self.malformed_rows, "dropped": self.dropped,
                "refused_gap": self.refused_gap, "rejected": self.rejected, "db_errors": self.db_errors,
                "lag_median_s": round(statistics.median(lags), 4) if lags else 0.0,
                "lag_p99_s": round(lags[int(0.99 * (len(lags) - 1))], 4) if lags else 0.0,
                "last_problem": self.last_problem}


class Aggregator:
    def __init__(self, settings: ServerSettings, engine: Engine, clock: Callable[[], float] = time.time,
                 log: Callable[[str], None] = print, max_inbox: int = MAX_INBOX) -> None:
        self.settings, self.engine, self.clock, self.log = settings, engine, clock, log
        self.max_inbox = max_inbox
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
                    lambda s, leaf=leaf: self.receive(leaf, str(s.key_expr), s.payload.to_bytes())))
        self._worker = threading.Thread(target=self._run, name="fleet-writer", daemon=True)
        self._worker.start()
        return self

    def receive(self, leaf: str, key_expr: str, payload: bytes) -> None:
        """On Zenoh's thread: queue a message. Past ``max_inbox`` queued messages a batch is dropped —
        memory stays bounded under overload, and the site sends it again, not acknowledged."""
        if leaf == "batch" and self._inbox.qsize() >= self.max_inbox:
            self.stats.dropped += 1
            return
        self._inbox.put((leaf, key_expr, payload))

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
        running = True
        while running and (item := self._inbox.get()) is not None:
            group, size = [item], len(item[2])
            while len(group) < GROUP_MAX_MESSAGES and size < GROUP_MAX_BYTES:
                try:
                    more = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    running = False
                    break
                group.append(more)
                size += len(more[2])
            if len(group) > 1:
                try:
                    self._handle_many(group)
                    continue
                except Exception:  # done again below, one at a time, where it is counted and logged
                    pass
            for leaf, key_expr, payload in group:
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
        """One message from a site (the worker's fallback; tests call it directly)."""
        try:
            self._handle_many([(leaf, key_expr, payload)])
        except SQLAlchemyError as exc:  # not acknowledged: the site sends it again
            self.stats.db_errors += 1
            self._problem(f"database: {error_line(exc)}")

    def _decode(self, leaf: str, key_expr: str, payload: bytes) -> tuple[str, protocol.BatchMsg | protocol.StatusMsg]:
        """The site and the message, or ProtocolError saying why it is refused."""
        site = protocol.site_of(key_expr)
        msg = protocol.decode_batch(payload) if leaf == "batch" else protocol.decode_status(payload)
        if msg.site != site or site not in self.site_users:
            raise protocol.ProtocolError(f"message for site {msg.site!r} refused (no such site party, or the key "
                                         "names another site)")
        return site, msg

    def _handle_many(self, items: list[tuple[str, str, bytes]]) -> None:
        """Messages in arrival order, in one transaction. Raises (changing nothing) if the transaction fails."""
        refused: list[str] = []
        writes: list[fleet_store.BatchWrite | fleet_store.StatusWrite] = []
        outcomes: list[tuple[str, protocol.BatchMsg, Verdict]] = []
        streams: dict[str, SiteStream] = {}  # working copies: they replace the streams once committed
        for leaf, key_expr, payload in items:
            try:
                site, msg = self._decode(leaf, key_expr, payload)
            except protocol.ProtocolError as exc:
                refused.append(f"{key_expr}: {exc}")
                continue
            name = self.settings.site_names.get(site, site)
            if isinstance(msg, protocol.StatusMsg):
                writes.append(fleet_store.StatusWrite(site, msg.epoch, msg.head, name))
                continue
            if site not in streams:
                streams[site] = dataclasses.replace(self.streams.get(site) or SiteStream())
            stream = streams[site]
            verdict = stream.accept(msg)
            if not verdict.ack.gap and (verdict.store or verdict.new_epoch or verdict.lost):
                writes.append(fleet_store.BatchWrite(site, msg.epoch, msg.head, verdict.store, name))
                stream.committed(verdict)  # so the next batch of this site in the group follows on
            outcomes.append((site, msg, verdict))
        if writes:
            malformed = fleet_store.store_many(self.engine, writes, self._now())
            if malformed:
                self.stats.malformed_rows += malformed
                self._problem(f"{malformed} malformed telemetry row(s), alarm transition(s) or report file(s) kept "
                              "only as sent (fleet_records), not in the fleet view's tables")
        self.streams.update(streams)
        committed_at = self.clock()
        for text in refused:
            self.stats.rejected += 1
            self._problem(text)
        for site, batch, verdict in outcomes:
            self.stats.batches += 1
            if verdict.ack.gap:
                self.stats.refused_gap += 1
            else:
                self.stats.duplicates += len(batch.records) - len(verdict.store)
                self.stats.records += len(verdict.store)
                if verdict.lost:
                    self.stats.lost += verdict.lost
                    self._problem(f"site {site}: {verdict.lost} record(s) before {batch.floor} are no longer held by "
                                  "the edge (pruned there after an acknowledgement this database does not have); "
                                  "resuming")
                if verdict.store:
                    self.stats.lags_s.append(committed_at - verdict.store[-1].time_ns / 1e9)
            if self.session is not None:
                self.session.put(protocol.key(site, "ack"), protocol.encode_ack(verdict.ack))

    def backlog(self) -> int:
        return self._inbox.qsize()
