"""The aggregator's writer: messages that queued up are written in one transaction (a group commit),
acknowledged only after it, and a group that fails is done again one message at a time.

Before this, one commit per batch held a durable PostgreSQL aggregator to ~130 batches/s (26 sites
at the uplink's 5 sends a second; bench/bench_fleet.py measured the lag growing by 0.5 s a second
at 40 sites). Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import event, func
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from energizeos.records.models import FleetRecord, FleetSite, FleetTelemetry
from energizeos.remote import fleet_store, protocol
from energizeos.remote.aggregator import Aggregator
from energizeos.remote.config import Party, ServerSettings

SITES = ("site-a", "site-b", "site-c")
EPOCH = "e1"


class Acks:
    """Stands in for the router session: records each ack with how many commits had happened by then."""

    def __init__(self, commits: list[int]) -> None:
        self.commits = commits
        self.sent: list[tuple[str, protocol.AckMsg, int]] = []

    def put(self, key: str, payload: bytes) -> None:
        self.sent.append((key, protocol.decode_ack(payload), self.commits[0]))


def _aggregator(engine, tmp_path: Path) -> tuple[Aggregator, list[int], Acks]:
    creds = tmp_path / "credentials"
    creds.write_text("".join(f"{s}:pw\n" for s in SITES))
    settings = ServerSettings(listen=["tcp/127.0.0.1:7450"], credentials_file=creds,
                              parties=[Party(user=s, role="site", sites=[s]) for s in SITES])
    commits = [0]
    event.listen(engine, "commit", lambda _conn: commits.__setitem__(0, commits[0] + 1))
    agg = Aggregator(settings, engine, log=lambda _text: None)
    acks = Acks(commits)
    agg.session = acks  # type: ignore[assignment] - only put() is used
    return agg, commits, acks


def _batch(site: str, first: int, n: int, points: int = 3, bad: bool = False) -> tuple[str, str, bytes]:
    t = time.time_ns()

    def rows(when: int) -> list[dict]:
        if bad:
            return [{"value": 1.0}] * points
        return [{"point": f"/m/v{p}", "time_ns": when, "value": float(p), "quality": 0} for p in range(points)]

    # 1 ms apart: fleet_telemetry keeps microseconds, so samples closer than that would be one row
    records = tuple(protocol.Record(seq, "telemetry", t + seq * 1_000_000, {"topic": "/m", "rows": rows(
        t + seq * 1_000_000)}) for seq in range(first, first + n))
    return "batch", protocol.key(site, "batch"), protocol.encode_batch(
        protocol.BatchMsg(site, EPOCH, first + n - 1, records))


def _status(site: str, head: int) -> tuple[str, str, bytes]:
    return "status", protocol.key(site, "status"), protocol.encode_status(
        protocol.StatusMsg(site, EPOCH, head, 0, time.time_ns(), 1.0))


def _run_queued(agg: Aggregator, items: list[tuple[str, str, bytes]]) -> None:
    """Queue everything first, as a busy router would, then let the writer loop take it."""
    for item in items:
        agg._inbox.put(item)
    agg._inbox.put(None)
    agg._run()


def _counts(engine) -> tuple[dict[str, int], dict[str, int], dict[str, tuple[int, int]]]:
    with Session(engine) as s:
        records = {k: n for k, n in s.exec(select(FleetRecord.site_id, func.count()).group_by(FleetRecord.site_id))}
        rows = {k: n for k, n in s.exec(select(FleetTelemetry.site_id, func.count()).group_by(FleetTelemetry.site_id))}
        sites = {r.site_id: (r.have_seq, r.head_seq) for r in s.exec(select(FleetSite))}
    return records, rows, sites


def test_queued_batches_and_statuses_go_in_one_transaction_and_are_acked_after_it(migrated_engine, tmp_path):
    agg, commits, acks = _aggregator(migrated_engine, tmp_path)
    items = [_status("site-a", 4), _batch("site-a", 1, 2), _batch("site-b", 1, 1), _batch("site-a", 3, 2),
             _batch("site-a", 1, 2),  # sent again: nothing new, acked at 4
             _batch("site-c", 3, 1),  # records 1..2 never came: refused with a gap
             _status("site-b", 1), _batch("site-b", 2, 3)]
    _run_queued(agg, items)

    assert commits[0] == 1
    records, rows, sites = _counts(migrated_engine)
    assert records == {"site-a": 4, "site-b": 4} and rows == {"site-a": 12, "site-b": 12}
    assert sites["site-a"] == (4, 4) and sites["site-b"] == (4, 4) and "site-c" not in sites
    assert [(k.split("/")[1], a.have, a.gap) for k, a, _ in acks.sent] == [
        ("site-a", 2, False), ("site-b", 1, False), ("site-a", 4, False), ("site-a", 4, False),
        ("site-c", 0, True), ("site-b", 4, False)]
    assert all(after == 1 for _k, _a, after in acks.sent)  # no ack before the commit
    s = agg.stats
    assert (s.batches, s.records, s.duplicates, s.refused_gap, s.rejected, s.db_errors) == (6, 8, 2, 1, 0, 0)
    assert (agg.streams["site-a"].have, agg.streams["site-b"].have) == (4, 4) and len(s.lags_s) == 4


def test_a_bad_message_in_a_group_costs_only_itself(migrated_engine, tmp_path):
    agg, commits, acks = _aggregator(migrated_engine, tmp_path)
    items = [_batch("site-a", 1, 2), _batch("site-b", 1, 1, bad=True),  # rows without a point: kept only raw
             ("batch", protocol.key("site-c", "batch"), b"not json"), _batch("site-c", 1, 1)]
    _run_queued(agg, items)

    records, rows, _sites = _counts(migrated_engine)
    assert records == {"site-a": 2, "site-b": 1, "site-c": 1}  # site-b is not stalled by its bad rows
    assert rows == {"site-a": 6, "site-c": 3}
    assert [(k.split("/")[1], a.have) for k, a, _ in acks.sent] == [("site-a", 2), ("site-b", 1), ("site-c", 1)]
    assert agg.stats.rejected == 1 and agg.stats.records == 4 and agg.stats.malformed_rows == 3
    assert commits[0] == 1  # the refused message did not break the group


def test_a_database_away_acks_nothing_and_keeps_the_streams(migrated_engine, tmp_path, monkeypatch):
    agg, _commits, acks = _aggregator(migrated_engine, tmp_path)
    _run_queued(agg, [_batch("site-a", 1, 2)])
    assert agg.streams["site-a"].have == 2 and len(acks.sent) == 1

    def away(*_args, **_kwargs):
        raise OperationalError("INSERT", {}, Exception("connection refused"))

    monkeypatch.setattr(fleet_store, "store_many", away)
    _run_queued(agg, [_batch("site-a", 3, 2), _status("site-b", 1), _batch("site-b", 1, 1)])
    assert len(acks.sent) == 1 and agg.streams["site-a"].have == 2 and "site-b" not in agg.streams
    assert agg.stats.db_errors == 3 and agg.stats.records == 2

    monkeypatch.undo()  # back: the sites send again from what was acknowledged
    _run_queued(agg, [_batch("site-a", 3, 2), _batch("site-b", 1, 1)])
    assert _counts(migrated_engine)[0] == {"site-a": 4, "site-b": 1}


def test_store_batch_and_note_status_still_work_alone(migrated_engine):
    from datetime import UTC, datetime

    t = time.time_ns()
    record = protocol.Record(1, "telemetry", t, {"rows": [{"point": "/p", "time_ns": t, "value": 1.0}]})
    fleet_store.note_status(migrated_engine, "site-x", EPOCH, 5, datetime.now(UTC), "X")
    fleet_store.store_batch(migrated_engine, "site-x", EPOCH, 5, (record,), datetime.now(UTC))
    records, rows, sites = _counts(migrated_engine)
    assert records == {"site-x": 1} and rows == {"site-x": 1} and sites == {"site-x": (1, 5)}


def test_a_malformed_row_never_stalls_its_site(tmp_path):
    """A telemetry row without a point, or an alarm transition without its fields, is kept as sent
    (fleet_records) and left out of the view's tables; the site's next records are stored as usual."""
    from energizeos.records.db import init_db, make_engine
    from energizeos.records.models import FleetAlarm

    engine = make_engine(f"sqlite:///{tmp_path / 'fleet.db'}")
    init_db(engine)
    now = datetime.now(UTC)
    good = {"point": "/site/poi/meter/p_kw", "time_ns": 1_000_000, "value": 5.0, "quality": 0}
    Record = protocol.Record
    records = (Record(1, "telemetry", 1, {"rows": [good, {"time_ns": 2, "value": 1.0}, {**good, "value": "x"}]}),
               Record(2, "alarm_events", 2, {"alarm_id": 7, "code": "X"}),
               Record(3, "telemetry", 3, {"rows": [{**good, "time_ns": 2_000_000}]}))
    assert fleet_store.store_many(engine, [fleet_store.BatchWrite("site-a", "e", 3, records)], now) == 3
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(FleetRecord)).one() == 3
        assert session.exec(select(func.count()).select_from(FleetTelemetry)).one() == 2
        assert session.exec(select(func.count()).select_from(FleetAlarm)).one() == 0


def test_an_overloaded_writer_drops_new_batches_and_the_sites_send_them_again(migrated_engine, tmp_path):
    agg, _commits, acks = _aggregator(migrated_engine, tmp_path)
    agg.max_inbox = 3
    for first in (1, 3, 5, 7, 9):  # the writer is busy: only three fit
        agg.receive(*_batch("site-a", first, 2))
    agg.receive(*_status("site-a", 10))  # statuses are small and always queued
    assert agg.stats.dropped == 2 and agg.backlog() == 4
    agg._inbox.put(None)
    agg._run()
    assert agg.streams["site-a"].have == 6 and _counts(migrated_engine)[0] == {"site-a": 6}
    _run_queued(agg, [_batch("site-a", 7, 4)])  # go-back-N: the site sends from its acknowledged point
    assert _counts(migrated_engine)[0] == {"site-a": 10} and acks.sent[-1][1].have == 10
