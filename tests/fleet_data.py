"""A fleet database for the fleet-view tests, written through the aggregator's own write path
(``fleet_store.store_batch`` / ``note_status``) from real messages turned into record bodies by the
historian's row functions — the same bodies an edge forwards.

All times hang off ``NOW`` (by default 2026-11-26 14:00:30 PST, 22:00:30 UTC); the sites:

- ``alpha`` (online): a day of telemetry every 5 min from 14:00 yesterday to 14:00 today (site time).
  Import register 10 000 kWh + 0.5 kWh/min from 14:00 yesterday; export register 500 kWh until 10:00
  today, then + 0.2 kWh/min. POI 300 kW, but 950 kW at 23:55 yesterday, 812.5 kW at 11:00, an INVALID
  9 999 kW at 12:00 and a STALE (NaN) meter reading at 13:00. SOC 40 % + 0.01 %/min, its 14:00 reading
  STALE. Battery +100 kW before noon, -120 kW from noon. Alarms: a high one acknowledged (active), a
  low one shelved (active), a medium one cleared but unacknowledged (open, not active), a low one back
  to normal. Two events.
- ``bravo`` (offline since 12:00:05 today): every 15 min from 20:00 yesterday to 12:00 today. Import
  2 000 kWh + 1 kWh/min from 20:00; export register stuck at 0 (a real zero); POI 100, 150, 200, 250 kW
  in turn; SOC 70 %, battery 0 kW. One critical alarm active.
- ``charlie`` (catching up: the edge holds 500 records, 237 are stored): every 10 min from 22:00
  yesterday to 11:00 today. Import 500 kWh + 0.25 kWh/min from 22:00; the export register restarts
  at 06:00 (meter replaced): 300 + 0.1 kWh/min, then 0 + 0.1 kWh/min. POI 400 kW, SOC 30 %, battery 250 kW.
- ``delta`` (online, nothing today): every 10 min from 18:00 to 23:50 yesterday. Import 100 kWh +
  0.1 kWh/min from 18:00; SOC 88 %, battery 0 kW. A "remote-link" event at 18:00:30 and four report
  announcements (``DELTA_REPORTS``): at 18:04 one whose details the uplink could not read (forwarded
  as {}), at 18:05 the daily 2026-11-23 without data, at 18:06 the daily 2026-11-24, at 18:07 the
  monthly 2026-10. With its announcement the site forwarded files (``DELTA_FILES``): the daily
  2026-11-24 as pdf and csv, the monthly 2026-10 as html; each file's bytes (``report_file_bytes``)
  hash to the SHA-256 announced for it.
- ``echo``: configured, never heard from.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from energizeos.nodes.historian_rows import alarm_event_row, ems_event_row, telemetry_rows
from energizeos.records.types import ns_from_utc
from energizeos.remote.fleet_store import note_status, store_batch
from energizeos.remote.protocol import Record
from energizeos.reports.build import figures_digest
from energizeos_msgs.msg import Alarm, BmsStatus, EmsEvent, Header, MeterReading, PcsStatus, Time

TZ = ZoneInfo("America/Los_Angeles")
NOW = datetime(2026, 11, 26, 14, 0, 30, tzinfo=TZ)
KNOWN = {"alpha": "Alpha Plant", "bravo": "Bravo Warehouse", "charlie": "Charlie Depot", "echo": "Echo Yard"}
NAN = float("nan")
CHARLIE_HEAD = 500
BATCH = 100  # records per store_batch call

# delta's reports: (minute after 18:00 yesterday, kind, period, figures as build_report makes them; None:
# details the uplink could not read). 0.1 + 0.2 and the long coverage check that floats come back exact.
DAILY_FIGURES = {"has_data": True, "period_s": 86400.0, "poi_coverage_pct": 99.98263888888889,
                 "gap_s[/site/poi/meter/p_kw]": 15.0, "gaps[/site/poi/meter/p_kw]": 1, "poi_import_kwh": 1234.5678,
                 "poi_export_kwh": 0.1 + 0.2, "peak_kw_with": 61.5, "peak_kw_with_at": "2026-11-24 18:45:00",
                 "peak_kw_without": 98.25, "bill_without_bess": 192.5, "bill_with_bess": 180.125, "savings": 12.375,
                 "round_trip_efficiency_pct": None, "availability_pct": 99.5, "plan_ids": ""}
MONTHLY_FIGURES = {"has_data": True, "period_s": 2678400.0, "poi_import_kwh": 30512.4, "poi_export_kwh": 12.5,
                   "peak_kw_with": 88.0, "peak_kw_with_at": "2026-10-14 17:30:00", "peak_kw_without": 131.0,
                   "bill_without_bess": 6210.0, "bill_with_bess": 4729.25, "savings": 1480.75}
NO_DATA_FIGURES = {"has_data": False, "period_s": 86400.0}
DELTA_REPORTS = ((4, "daily", "2026-11-22", None), (5, "daily", "2026-11-23", NO_DATA_FIGURES),
                 (6, "daily", "2026-11-24", DAILY_FIGURES), (7, "monthly", "2026-10", MONTHLY_FIGURES))
DELTA_FILES = {("daily", "2026-11-24"): ("pdf", "csv"), ("monthly", "2026-10"): ("html",)}  # forwarded formats


def report_files(site: str, kind: str, label: str) -> dict[str, str]:
    """Stand-ins for the SHA-256 of the files a site keeps (pdf, html, csv)."""
    return {fmt: hashlib.sha256(f"{site} {kind} {label}.{fmt}".encode()).hexdigest() for fmt in ("pdf", "html", "csv")}


def report_file_bytes(site: str, kind: str, label: str, fmt: str) -> bytes:
    """A stand-in file whose SHA-256 is the one ``report_files`` gives for it."""
    return f"{site} {kind} {label}.{fmt}".encode()


def report_file_body(kind: str, label: str, fmt: str, data: bytes, time_ns: int) -> dict:
    """A "report_files" record body as the edge's uplink forwards it (keys in its order)."""
    return {"report": kind, "period": label, "format": fmt, "name": f"{kind}-{label}.{fmt}",
            "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "time_ns": time_ns,
            "data_b64": base64.b64encode(data).decode()}


def _header(t: datetime) -> Header:
    ns = ns_from_utc(t)
    return Header(stamp=Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000))


@dataclass
class SiteLog:
    """One site's outbox: records in edge order (seq from 1)."""

    site: str
    records: list[Record]

    def add(self, kind: str, t: datetime, body: dict) -> None:
        self.records.append(Record(len(self.records) + 1, kind, ns_from_utc(t), body))

    def sample(self, t: datetime, p_kw: float, imp: float, exp: float, soc: float, bat: float,
               meter_quality: int = 0, bms_quality: int = 0) -> None:
        h = _header(t)
        msgs = (("/site/poi/meter", MeterReading(header=h, quality=meter_quality, p_kw=p_kw, energy_delivered_kwh=imp,
                                                  energy_received_kwh=exp, frequency_hz=60.0)),
                ("/bess/pcs/status", PcsStatus(header=h, p_kw=bat, rated_kw=500.0)),
                ("/bess/bms/status", BmsStatus(header=h, quality=bms_quality, soc_pct=soc, permissive=True)))
        for topic, msg in msgs:
            self.add("telemetry", t, {"rows": telemetry_rows(topic, msg)})

    def alarm(self, t: datetime, alarm_id: int, code: str, priority: int, event: int, state: int,
              message: str = "", user: str = "") -> None:
        msg = Alarm(header=_header(t), alarm_id=alarm_id, code=code, source="bms/rack3", priority=priority,
                    event=event, state=state, message=message or f"{code} at {t:%H:%M}", user=user)
        self.add("alarm_events", t, alarm_event_row(msg))

    def event(self, t: datetime, kind: str, message: str, user: str = "") -> None:
        self.add("events", t, ems_event_row(EmsEvent(header=_header(t), source="dispatcher", kind=kind,
                                                     message=message, user=user)))

    def report(self, t: datetime, kind: str, label: str, figures: dict | None) -> None:
        """A kept report as the reporter node announces it (``EventReporter.report`` serialises the
        details so); ``figures`` None: details that were not JSON, which the uplink forwards as {}."""
        details = "{}" if figures is None else json.dumps(
            {"report": kind, "period": label, "figures_sha256": figures_digest(figures), "figures": figures,
             "files": report_files(self.site, kind, label)}, sort_keys=True, default=str)
        self.add("events", t, ems_event_row(EmsEvent(header=_header(t), source="reporter", kind="report",
                                                     message=f"{kind} report {label} ready", data_json=details)))

    def report_file(self, t: datetime, kind: str, label: str, fmt: str) -> None:
        """A file of a report, forwarded by the uplink right after its announcement (the same time)."""
        ns = ns_from_utc(t)
        self.add("report_files", t, report_file_body(kind, label, fmt, report_file_bytes(self.site, kind, label, fmt),
                                                     ns))

    def store(self, engine: Engine, epoch: str, name: str = "", head: int | None = None,
              last_seen: datetime | None = None) -> None:
        """Forward every record in batches as the aggregator receives them (each a second after its
        newest record); ``last_seen`` overrides the last batch's arrival."""
        records = sorted(self.records, key=lambda r: r.seq)
        for i in range(0, len(records), BATCH):
            batch = tuple(records[i:i + BATCH])
            received = datetime.fromtimestamp(max(r.time_ns for r in batch) / 1e9, UTC) + timedelta(seconds=1)
            last = i + BATCH >= len(records)
            store_batch(engine, self.site, epoch, head if head is not None else len(records), batch,
                        (last_seen or received) if last else received, name=name)


def _every(start: datetime, end: datetime, step_min: int) -> list[datetime]:
    out, t = [], start
    while t <= end:
        out.append(t)
        t += timedelta(minutes=step_min)
    return out


def _minutes(t: datetime, since: datetime) -> float:
    return (t - since).total_seconds() / 60.0


def build_fleet(engine: Engine, now: datetime = NOW) -> None:
    """Write the five sites, their times relative to ``now`` (site time of day as described above)."""
    local = now.astimezone(TZ)
    today = datetime(local.year, local.month, local.day, tzinfo=TZ)

    def at(day_offset: int, hh: int, mm: int = 0, ss: int = 0) -> datetime:
        # wall-clock site time: a timedelta on an aware datetime keeps the wall clock, as wanted here
        d = today + timedelta(days=day_offset)
        return datetime(d.year, d.month, d.day, hh, mm, ss, tzinfo=TZ)

    # alpha: online, a day of data every 5 minutes
    alpha = SiteLog("alpha", [])
    origin = at(-1, 14)
    for t in _every(origin, at(0, 14), 5):
        m = _minutes(t, origin)
        p = 950.0 if t == at(-1, 23, 55) else 812.5 if t == at(0, 11) else 300.0
        exp = 500.0 if t <= at(0, 10) else 500.0 + 0.2 * _minutes(t, at(0, 10))
        bat = 100.0 if t < at(0, 12) else -120.0
        if t == at(0, 12):  # decoded but out of range: must not become the peak
            alpha.sample(t, 9999.0, 10_000 + 0.5 * m, exp, 40.0 + 0.01 * m, bat, meter_quality=1)
        elif t == at(0, 13):  # comms loss: NaN, stored as a gap
            alpha.sample(t, NAN, NAN, NAN, 40.0 + 0.01 * m, bat, meter_quality=2)
        else:
            alpha.sample(t, p, 10_000 + 0.5 * m, exp, 40.0 + 0.01 * m if t != at(0, 14) else NAN, bat,
                         bms_quality=2 if t == at(0, 14) else 0)
    a = Alarm
    alpha.alarm(at(0, 8), 11, "METER_CT_CHECK", a.PRIORITY_LOW, a.EVENT_RAISE, a.STATE_ACTIVE_UNACKED)
    alpha.alarm(at(0, 8, 10), 11, "METER_CT_CHECK", a.PRIORITY_LOW, a.EVENT_CLEAR, a.STATE_CLEARED_UNACKED)
    alpha.alarm(at(0, 8, 20), 11, "METER_CT_CHECK", a.PRIORITY_LOW, a.EVENT_ACKNOWLEDGE, a.STATE_NORMAL, user="ops")
    alpha.alarm(at(0, 9), 12, "BMS_RACK_OVERTEMP", a.PRIORITY_HIGH, a.EVENT_RAISE, a.STATE_ACTIVE_UNACKED,
                "rack 3 at 52 C")
    alpha.alarm(at(0, 9, 5), 12, "BMS_RACK_OVERTEMP", a.PRIORITY_HIGH, a.EVENT_ACKNOWLEDGE, a.STATE_ACTIVE_ACKED,
                "rack 3 at 52 C", user="ops")
    alpha.alarm(at(0, 10), 13, "PCS_NOT_FOLLOWING", a.PRIORITY_MEDIUM, a.EVENT_RAISE, a.STATE_ACTIVE_UNACKED)
    alpha.alarm(at(0, 10, 30), 13, "PCS_NOT_FOLLOWING", a.PRIORITY_MEDIUM, a.EVENT_CLEAR, a.STATE_CLEARED_UNACKED)
    alpha.alarm(at(0, 10, 40), 14, "HVAC_FILTER", a.PRIORITY_LOW, a.EVENT_RAISE, a.STATE_ACTIVE_UNACKED)
    alpha.alarm(at(0, 10, 45), 14, "HVAC_FILTER", a.PRIORITY_LOW, a.EVENT_SHELVE, a.STATE_SHELVED, user="ops")
    alpha.event(at(0, 7), "mode_change", "dispatch mode peak shaving", user="alice")
    alpha.event(at(0, 13, 30), "setting_change", "export limit 0 kW")
    alpha.records.sort(key=lambda r: (r.time_ns, r.seq))  # edge order is time order
    alpha.records = [Record(i, r.kind, r.time_ns, r.body) for i, r in enumerate(alpha.records, 1)]
    alpha.store(engine, "alpha-e1", last_seen=now - timedelta(seconds=1))

    # bravo: offline since 12:00:05
    bravo = SiteLog("bravo", [])
    origin = at(-1, 20)
    for i, t in enumerate(_every(origin, at(0, 12), 15)):
        bravo.sample(t, 100.0 + 50.0 * (i % 4), 2000 + _minutes(t, origin), 0.0, 70.0, 0.0)
    bravo.alarm(at(0, 11, 50), 21, "RELAY_TRIP", Alarm.PRIORITY_CRITICAL, Alarm.EVENT_RAISE, Alarm.STATE_ACTIVE_UNACKED,
                "POI breaker tripped (27 undervoltage)")
    bravo.records.sort(key=lambda r: (r.time_ns, r.seq))
    bravo.records = [Record(i, r.kind, r.time_ns, r.body) for i, r in enumerate(bravo.records, 1)]
    bravo.store(engine, "bravo-e1", last_seen=at(0, 12, 0, 5))

    # charlie: back online, sending its backlog (records up to 11:00 stored so far)
    charlie = SiteLog("charlie", [])
    origin = at(-1, 22)
    for t in _every(origin, at(0, 11), 10):
        exp = 300 + 0.1 * _minutes(t, origin) if t < at(0, 6) else 0.1 * _minutes(t, at(0, 6))
        charlie.sample(t, 400.0, 500 + 0.25 * _minutes(t, origin), exp, 30.0, 250.0)
    charlie.store(engine, "charlie-e7", head=CHARLIE_HEAD, last_seen=now - timedelta(seconds=2))

    # delta: only yesterday evening, but its status messages arrive
    delta = SiteLog("delta", [])
    origin = at(-1, 18)
    for t in _every(origin, at(-1, 23, 50), 10):
        delta.sample(t, 50.0, 100 + 0.1 * _minutes(t, origin), 0.0, 88.0, 0.0)
    delta.add("events", at(-1, 18, 0, 30), ems_event_row(EmsEvent(
        header=_header(at(-1, 18, 0, 30)), source="uplink", kind="remote-link", message="remote link up: 0 record(s) "
        "waiting to be acknowledged", data_json=json.dumps({"link": "up", "pending": 0}))))
    for minute, kind, label, figures in DELTA_REPORTS:
        delta.report(at(-1, 18, minute), kind, label, figures)
        for fmt in DELTA_FILES.get((kind, label), ()):
            delta.report_file(at(-1, 18, minute), kind, label, fmt)
    delta.records.sort(key=lambda r: (r.time_ns, r.seq))
    delta.records = [Record(i, r.kind, r.time_ns, r.body) for i, r in enumerate(delta.records, 1)]
    delta.store(engine, "delta-e1", name="Delta Lab")
    note_status(engine, "delta", "delta-e1", len(delta.records), now - timedelta(seconds=3))

