"""The fleet view's queries against hand-computed figures, on SQLite and on a real PostgreSQL server.
The data (tests/fleet_data.py) goes in through the aggregator's own write path, ``store_batch``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from energizeos.records.db import init_db, make_engine
from energizeos.records.models import FleetRecord
from energizeos.records.types import ns_from_utc
from energizeos.remote.fleet_queries import (
    CATCHING_UP,
    NEVER_HEARD,
    OFFLINE,
    ONLINE,
    SiteSummary,
    fleet_overview,
    fleet_sites,
    local_day,
    site_alarms,
    site_events,
    site_power_series,
    site_reports,
)
from energizeos.remote.fleet_store import store_batch
from energizeos.remote.protocol import Record
from energizeos.reports.build import figures_digest
from tests.fleet_data import DELTA_REPORTS, KNOWN, NOW, TZ, build_fleet, report_files

LA = "America/Los_Angeles"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One fleet database per backend for the whole module: the queries only read it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fleet') / 'fleet.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database(f"fleet_q_{os.getpid()}")
    engine = make_engine(url)
    init_db(engine)
    build_fleet(engine)
    yield engine
    engine.dispose()


def by_id(summaries: list[SiteSummary]) -> dict[str, SiteSummary]:
    return {s.site_id: s for s in summaries}


def test_status_backlog_lag_and_worst_first_order(fleet):
    sites = fleet_overview(fleet, NOW, offline_after_s=10, tz=LA, known=KNOWN)
    # bravo: a critical alarm; then offline, catching up, online (alpha has alarms, delta none), never heard
    assert [s.site_id for s in sites] == ["bravo", "charlie", "alpha", "delta", "echo"]
    s = by_id(sites)
    assert {k: v.status for k, v in s.items()} == {"alpha": ONLINE, "bravo": OFFLINE, "charlie": CATCHING_UP,
                                                   "delta": ONLINE, "echo": NEVER_HEARD}
    assert s["alpha"].age_s == 1.0 and s["alpha"].lag_s == 30.0 and s["alpha"].backlog == 0
    assert s["bravo"].age_s == 2 * 3600 + 25  # silent since 12:00:05; now 14:00:30
    assert s["bravo"].lag_s == 2 * 3600 + 30  # its newest record: the 12:00 sample
    assert s["charlie"].backlog == 500 - 79 * 3  # 79 samples of 3 messages stored, the edge holds 500
    assert s["charlie"].lag_s == 3 * 3600 + 30  # newest stored: 11:00
    assert s["delta"].lag_s == 14 * 3600 + 10 * 60 + 30  # newest: 23:50 yesterday
    assert s["echo"].last_seen is None and s["echo"].lag_s is None and s["echo"].import_kwh is None
    # configured names win; an unconfigured site keeps the name it gave itself
    assert s["alpha"].name == "Alpha Plant" and s["delta"].name == "Delta Lab"
    # with a longer offline limit bravo is online again (and no longer catching up: head == have)
    assert by_id(fleet_overview(fleet, NOW, offline_after_s=3 * 3600, tz=LA))["bravo"].status == ONLINE


def test_active_alarms_by_priority(fleet):
    s = by_id(fleet_overview(fleet, NOW, 10, LA, KNOWN))
    # alpha: high acknowledged + low shelved are active; the cleared-unacked medium and the normal low are not
    assert s["alpha"].alarms == {1: 0, 2: 1, 3: 0, 4: 1}
    assert s["bravo"].alarms == {1: 1, 2: 0, 3: 0, 4: 0}
    assert s["charlie"].alarms == s["echo"].alarms == {1: 0, 2: 0, 3: 0, 4: 0}


def test_todays_figures_in_the_site_day(fleet):
    s = by_id(fleet_overview(fleet, NOW, 10, LA, KNOWN))
    a = s["alpha"]
    assert a.import_kwh == pytest.approx(0.5 * 840)  # 00:00 -> 14:00 at 0.5 kWh/min (the NaN 13:00 ignored)
    assert a.export_kwh == pytest.approx(0.2 * 240)  # 10:00 -> 14:00 at 0.2 kWh/min
    assert a.peak_import_kw == 812.5  # not yesterday's 950, not the invalid 9999
    assert a.soc_pct == pytest.approx(40 + 0.01 * (23 * 60 + 55))  # 13:55: the 14:00 reading is stale
    assert a.soc_at == datetime(2026, 11, 26, 13, 55, tzinfo=TZ)
    assert a.battery_kw == -120.0 and a.battery_at == datetime(2026, 11, 26, 14, 0, tzinfo=TZ)
    b = s["bravo"]
    assert b.import_kwh == pytest.approx(720.0)  # 00:00 -> 12:00 at 1 kWh/min
    assert b.export_kwh == 0.0  # a register that did not move: a real zero, not "no data"
    assert b.peak_import_kw == 250.0 and b.soc_pct == 70.0 and b.battery_kw == 0.0
    c = s["charlie"]
    assert c.import_kwh == pytest.approx(0.25 * 660)  # 00:00 -> 11:00
    assert c.export_kwh is None  # the register restarted at 06:00: no number rather than a wrong one
    assert c.peak_import_kw == 400.0
    d = s["delta"]  # nothing today
    assert (d.import_kwh, d.export_kwh, d.peak_import_kw) == (None, None, None)
    assert d.soc_pct == 88.0 and d.soc_at == datetime(2026, 11, 25, 23, 50, tzinfo=TZ)


def test_the_day_follows_the_time_zone(fleet):
    """In UTC, 'today' began at 16:00 yesterday site time: other readings, other figures."""
    s = by_id(fleet_overview(fleet, NOW, 10, "UTC", KNOWN))
    assert s["alpha"].import_kwh == pytest.approx(0.5 * (1440 - 120))  # from 16:00 yesterday
    assert s["alpha"].peak_import_kw == 950.0  # 23:55 yesterday site time is 07:55 today UTC
    assert s["bravo"].import_kwh == pytest.approx(960.0)  # its first reading: 20:00 yesterday
    assert s["delta"].import_kwh == pytest.approx(0.1 * 350)  # 18:00 -> 23:50 yesterday: today in UTC
    assert s["delta"].peak_import_kw == 50.0
    # a minute before local midnight the day is yesterday's: alpha's registers from 00:00 to 23:59 yesterday
    # (its first reading 14:00, its last 23:55)
    before = by_id(fleet_overview(fleet, datetime(2026, 11, 25, 23, 59, tzinfo=TZ), 10, LA))
    assert before["alpha"].import_kwh == pytest.approx(0.5 * (9 * 60 + 55))
    assert before["alpha"].peak_import_kw == 950.0


def test_only_one_site(fleet):
    assert [s.site_id for s in fleet_overview(fleet, NOW, 10, LA, KNOWN, only="charlie")] == ["charlie"]
    assert [s.status for s in fleet_overview(fleet, NOW, 10, LA, KNOWN, only="echo")] == [NEVER_HEARD]
    assert fleet_overview(fleet, NOW, 10, LA, KNOWN, only="nope") == []


def test_site_alarms_events_and_names(fleet):
    open_ones = site_alarms(fleet, "alpha")
    assert [(a.alarm_id, a.code, a.state) for a in open_ones] == [
        (12, "BMS_RACK_OVERTEMP", 2), (13, "PCS_NOT_FOLLOWING", 3), (14, "HVAC_FILTER", 4)]
    assert open_ones[0].raised == datetime(2026, 11, 26, 9, 0, tzinfo=TZ)  # raised, not last changed
    assert open_ones[0].changed == datetime(2026, 11, 26, 9, 5, tzinfo=TZ)
    assert {a.alarm_id for a in site_alarms(fleet, "alpha", active_only=False)} == {11, 12, 13, 14}
    assert site_alarms(fleet, "charlie") == []

    events = site_events(fleet, "alpha", limit=4)
    assert [(e.kind, e.what, e.user) for e in events] == [
        ("event", "setting_change", ""), ("alarm", "HVAC_FILTER shelved", "ops"),
        ("alarm", "HVAC_FILTER raised", ""), ("alarm", "PCS_NOT_FOLLOWING cleared", "")]
    assert events[0].time == datetime(2026, 11, 26, 13, 30, tzinfo=TZ) and events[0].message == "export limit 0 kW"
    everything = site_events(fleet, "alpha", limit=100)
    assert len(everything) == 11 and everything[-1].what == "mode_change" and everything[-1].user == "alice"
    # ``since`` bounds the scan: after 10:00 only the 10:00 raise onwards
    assert len(site_events(fleet, "alpha", since=datetime(2026, 11, 26, 10, 0, tzinfo=TZ))) == 5
    assert site_events(fleet, "alpha", kinds=("events",), limit=100)[-1].what == "mode_change"

    assert fleet_sites(fleet, KNOWN) == {"alpha": "Alpha Plant", "bravo": "Bravo Warehouse",
                                         "charlie": "Charlie Depot", "delta": "Delta Lab", "echo": "Echo Yard"}


def test_site_reports_newest_first_exactly_as_announced(fleet):
    reports = site_reports(fleet, "delta")
    assert [(r.time, r.report, r.period) for r in reports] == [
        (datetime(2026, 11, 25, 18, 7, tzinfo=TZ), "monthly", "2026-10"),
        (datetime(2026, 11, 25, 18, 6, tzinfo=TZ), "daily", "2026-11-24"),
        (datetime(2026, 11, 25, 18, 5, tzinfo=TZ), "daily", "2026-11-23"),
        (datetime(2026, 11, 25, 18, 4, tzinfo=TZ), "", "")]  # its details did not survive the edge
    by_period = {r.period: r for r in reports}
    for _, kind, label, figures in DELTA_REPORTS[1:]:
        r = by_period[label]
        assert r.figures == figures and r.files == report_files("delta", kind, label)
        # the hash the site computed, and the figures still hash to it: nothing changed on the way
        assert r.figures_sha256 == figures_digest(figures) == figures_digest(r.figures)
        assert (r.source, r.message, r.problem) == ("reporter", f"{kind} report {label} ready", "")
    assert by_period["2026-11-24"].figures["poi_export_kwh"] == 0.30000000000000004
    lost = reports[-1]
    assert (lost.problem, lost.message, lost.source, lost.figures, lost.files, lost.figures_sha256) == (
        "details missing", "daily report 2026-11-22 ready", "reporter", {}, {}, "")
    # delta's remote-link event is an event, not a report; alpha has events and no report
    assert [e.what for e in site_events(fleet, "delta", limit=100)][-1] == "remote-link"
    assert site_reports(fleet, "alpha") == [] and site_reports(fleet, "echo") == []
    assert [r.period for r in site_reports(fleet, "delta", limit=2)] == ["2026-10", "2026-11-24"]
    assert [r.period for r in site_reports(fleet, "delta", since=datetime(2026, 11, 25, 18, 6, tzinfo=TZ))] == [
        "2026-10", "2026-11-24"]


def test_site_reports_list_what_they_can_read_and_take_no_lookalike(migrated_engine):
    """Announcements the page must survive, and records that hold the report text without being one."""
    t0 = datetime(2026, 11, 26, 1, 0, tzinfo=TZ)
    at = [t0 + timedelta(minutes=m) for m in range(12)]
    good = {"report": "daily", "period": "2026-11-25", "figures_sha256": "ab" * 32, "figures": {"savings": 3.5},
            "files": {"pdf": "cd" * 32}}

    def event(seq: int, kind: str, details: object, message: str = "") -> Record:
        ns = ns_from_utc(at[seq])
        data_json = details if isinstance(details, str) else json.dumps(details, sort_keys=True)
        return Record(seq, "events", ns, {"key": f"reporter:{kind}@{ns}", "time_ns": ns, "source": "reporter",
                                          "kind": kind, "message": message, "data_json": data_json})

    store_batch(migrated_engine, "golf", "g1", 8, (
        event(1, "report", good, "daily report 2026-11-25 ready"),
        event(2, "report", "{not json", "daily report 2026-11-26 ready"),
        event(3, "report", [1, 2]),
        event(4, "report", {**good, "figures": "lots", "files": {"pdf": 5}}),
        event(5, "report", {**good, "period": 42, "figures_sha256": None}),
        event(6, "setting_change", {"kind": "report"}, 'set "kind":"report"'),  # the text, escaped in strings
        event(7, "Report", good),  # SQLite's LIKE ignores case: Python does not
        Record(8, "decisions", ns_from_utc(at[8]), {"time_ns": ns_from_utc(at[8]), "kind": "report"}),
    ), now=at[9])
    store_batch(migrated_engine, "hotel", "h1", 1, (event(1, "report", good, "daily report 2026-11-25 ready"),),
                now=at[9])
    with Session(migrated_engine) as session:  # cut short: no edge sends this, but a page must not break on it
        session.add(FleetRecord(site_id="golf", epoch="g1", seq=9, kind="events", time=at[10], received=at[10],
                                body='{"kind":"report","data_json":"{\\"report\\": \\"dai'))
        session.commit()

    got = site_reports(migrated_engine, "golf")
    assert [(r.time, r.problem) for r in got] == [
        (at[10], "announcement is not a JSON object"),
        (at[5], "period not text; figures_sha256 missing"),
        (at[4], "figures are not an object; a file hash not text"),
        (at[3], "details are not a JSON object"),
        (at[2], "details are not a JSON object"),
        (at[1], "")]
    assert (got[1].report, got[1].period, got[1].figures, got[1].files) == ("daily", "", {"savings": 3.5},
                                                                           {"pdf": "cd" * 32})
    assert (got[2].report, got[2].period, got[2].figures, got[2].files) == ("daily", "2026-11-25", {}, {})
    assert got[4].message == "daily report 2026-11-26 ready" and got[4].report == ""
    assert got[5] == site_reports(migrated_engine, "hotel")[0] and got[5].figures == {"savings": 3.5}
    assert [r.time for r in site_reports(migrated_engine, "golf", limit=2)] == [at[10], at[5]]


def test_power_series_for_the_chart(fleet):
    start, _ = local_day(NOW, TZ)
    series = site_power_series(fleet, "alpha", start, NOW)
    poi = series["poi"]
    assert len(poi.times) == 14 * 12 + 1  # every 5 min from 00:00 to 14:00
    by_time = {t.astimezone(TZ).strftime("%H:%M"): v for t, v in zip(poi.times, poi.values, strict=True)}
    assert by_time["11:00"] == 812.5 and by_time["10:55"] == 300.0
    assert by_time["12:00"] is None and by_time["13:00"] is None  # invalid and stale: gaps, not values
    assert series["battery"].values[0] == 100.0 and series["battery"].values[-1] == -120.0
    # at most max_points, as means: 169 readings in 7 slices of 2 h
    coarse = site_power_series(fleet, "alpha", start, start + timedelta(hours=14), max_points=7)["poi"]
    assert len(coarse.times) == 7
    assert coarse.times[0] == (start + timedelta(hours=1)).astimezone(UTC)
    # 10:00-12:00 holds 24 readings, one 812.5: (23 * 300 + 812.5) / 24
    assert coarse.values[5] == pytest.approx((23 * 300 + 812.5) / 24)
    # 12:00-14:00 holds 25 (the last slice takes 14:00 too); 12:00 and 13:00 are gaps: 23 good readings of 300
    assert coarse.values[6] == pytest.approx(300.0)
    assert site_power_series(fleet, "delta", start, NOW)["poi"].times == []


def test_local_day_across_a_dst_change():
    start, end = local_day(datetime(2026, 11, 1, 12, 0, tzinfo=UTC), LA)  # clocks went back at 02:00
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=25)
    assert start.utcoffset() == timedelta(hours=-7) and end.utcoffset() == timedelta(hours=-8)
    start, end = local_day(datetime(2026, 3, 8, 20, 0, tzinfo=UTC), ZoneInfo(LA))  # forward at 02:00
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=23)
    with pytest.raises(ValueError, match="naive"):
        fleet_overview(None, datetime(2026, 11, 26, 12, 0))  # type: ignore[arg-type]


def test_a_reinstalled_edge_and_a_late_batch(tmp_path: Path):
    """A new outbox epoch restarts the numbering without losing the site's figures; an older batch that
    arrives late does not move the newest-record time back."""
    engine = make_engine(f"sqlite:///{tmp_path / 'f.db'}")
    init_db(engine)
    t = datetime(2026, 11, 26, 9, 0, tzinfo=TZ)

    def record(seq: int, when: datetime, value: float) -> Record:
        return Record(seq, "telemetry", ns_from_utc(when), {"rows": [
            {"point": "/site/poi/meter/energy_delivered_kwh", "time_ns": ns_from_utc(when), "value": value,
             "quality": 0}]})

    store_batch(engine, "golf", "e1", 2, (record(1, t, 10.0), record(2, t + timedelta(hours=1), 25.0)),
                now=t + timedelta(hours=1, seconds=1))
    store_batch(engine, "golf", "e2", 1, (record(1, t + timedelta(hours=2), 40.0),),
                now=t + timedelta(hours=2, seconds=1))
    store_batch(engine, "golf", "e2", 3, (record(2, t - timedelta(hours=1), 5.0),),  # late: 08:00
                now=t + timedelta(hours=2, seconds=2))
    now = t + timedelta(hours=2, seconds=30)
    s = fleet_overview(engine, now, 60, LA)[0]
    assert s.status == CATCHING_UP and s.backlog == 1  # the edge holds 3 of e2, 2 are stored
    assert s.lag_s == 30.0  # the late 08:00 record did not make the data look older
    assert s.import_kwh == pytest.approx(40.0 - 5.0)  # first reading today is now the 08:00 one
    engine.dispose()
