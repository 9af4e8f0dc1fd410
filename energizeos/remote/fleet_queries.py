"""Read-only queries over the fleet database for the fleet view (``ui/fleet_app.py``).

The aggregator writes the tables (``fleet_store.store_batch``); nothing here writes. Every figure is
computed from good-quality readings only (quality 0, a number): an invalid or stale reading is neither
a peak nor an energy register value. "Today" is the local day of ``tz`` that contains ``now``, up to
``now``; a figure that has no data says so (None), it is never shown as 0.

The overview is one statement per table: each site's figures are scalar subqueries that the primary
key of ``fleet_telemetry`` (site, point, time) answers with an index seek, so the cost grows with the
number of sites, not with the years of telemetry stored. SQLite and PostgreSQL run the same SQL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from energizeos.records.models import FleetAlarm, FleetRecord, FleetReportFile, FleetSite, FleetTelemetry
from energizeos.records.types import utc_from_ns
from energizeos_msgs.msg import Alarm

DEFAULT_TZ = "America/Los_Angeles"
POI_KW = "/site/poi/meter/p_kw"  # import +, export -
IMPORT_REGISTER = "/site/poi/meter/energy_delivered_kwh"  # grid -> site
EXPORT_REGISTER = "/site/poi/meter/energy_received_kwh"  # site -> grid
SOC_PCT = "/bess/bms/status/soc_pct"
BATTERY_KW = "/bess/pcs/status/p_kw"  # discharge +, charge -
GOOD = 0

ONLINE, CATCHING_UP, OFFLINE, NEVER_HEARD = "online", "catching-up", "offline", "never-heard"
PRIORITIES = (Alarm.PRIORITY_CRITICAL, Alarm.PRIORITY_HIGH, Alarm.PRIORITY_MEDIUM, Alarm.PRIORITY_LOW)
# Counted as active, as on the site's own Overview: a shelved alarm's condition may still be there.
ACTIVE_STATES = (Alarm.STATE_ACTIVE_UNACKED, Alarm.STATE_ACTIVE_ACKED, Alarm.STATE_SHELVED)
# Worst first: a silent site may hide anything; a never-heard one is usually not connected yet.
_STATUS_RANK = {OFFLINE: 0, CATCHING_UP: 1, ONLINE: 2, NEVER_HEARD: 3}

_T = FleetTelemetry.__table__  # type: ignore[attr-defined]
_S = FleetSite.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class SiteSummary:
    site_id: str
    name: str
    status: str  # ONLINE, CATCHING_UP, OFFLINE or NEVER_HEARD
    last_seen: datetime | None  # last batch or status heard from the site
    age_s: float | None  # now - last_seen
    backlog: int  # records the edge holds that are not stored here yet (head_seq - have_seq)
    lag_s: float | None  # now - source time of the newest stored record
    alarms: dict[int, int] = field(default_factory=dict)  # active alarms by priority, every priority a key
    import_kwh: float | None = None  # today, from the import register (last - first reading)
    export_kwh: float | None = None
    peak_import_kw: float | None = None  # today's highest POI import (0 when it exported all day)
    soc_pct: float | None = None  # latest good reading, whenever it was
    soc_at: datetime | None = None
    battery_kw: float | None = None
    battery_at: datetime | None = None

    def sort_key(self) -> tuple:
        """Worst first: an active critical alarm, then the status (offline, catching up, online, never
        heard), then active alarms from high down, then the bigger backlog, then the name."""
        a = self.alarms
        return (-a.get(Alarm.PRIORITY_CRITICAL, 0), _STATUS_RANK[self.status], -a.get(Alarm.PRIORITY_HIGH, 0),
                -a.get(Alarm.PRIORITY_MEDIUM, 0), -a.get(Alarm.PRIORITY_LOW, 0), -self.backlog, self.name,
                self.site_id)


@dataclass(frozen=True)
class SiteEvent:
    time: datetime
    kind: str  # "event" or "alarm"
    source: str
    what: str  # the event's kind, or "<CODE> raised" for an alarm transition
    message: str
    user: str


@dataclass(frozen=True)
class SiteReport:
    """A report the site announced (the reporter node's "report" event). The files stay at the site unless
    it forwarded them (``site_report_files``); their SHA-256 lets anyone check a copy, and
    ``figures_sha256`` one of the figures."""

    time: datetime  # when the site announced it (the event's stamp at the edge)
    report: str  # "daily" or "monthly"; "" when unreadable
    period: str  # the period label: "2026-11-25", "2026-10"; "" when unreadable
    figures: dict[str, Any]  # flat name -> value, as the report computed them ({} when unreadable)
    figures_sha256: str  # SHA-256 of the canonical JSON of the figures, as the site computed it
    files: dict[str, str]  # format -> SHA-256 of the file kept at the site (``site_report_files``: those forwarded)
    source: str  # the node that made it
    message: str  # the event's text ("daily report 2026-11-25 ready"): what is left when the details are not
    problem: str = ""  # what could not be read in the announcement; "" when it was whole


@dataclass(frozen=True)
class ReportFileRef:
    """A report file the site forwarded, without its bytes: ``report_file_bytes(site, epoch, seq)`` loads them."""

    name: str  # the file's name at the site, e.g. "daily-2026-11-25.pdf"
    sha256: str  # checked when stored and again when served
    size: int  # bytes
    epoch: str  # with seq: the fleet_records row that holds the bytes
    seq: int
    time: datetime  # the report's announcement time


@dataclass(frozen=True)
class Series:
    times: list[datetime]
    values: list[float | None]  # None: no good reading in that interval (a gap in the chart)


def local_day(now: datetime, tz: ZoneInfo | str = DEFAULT_TZ) -> tuple[datetime, datetime]:
    """[start, end) of the local day that contains ``now``, in the local zone (23 or 25 h at a DST change:
    subtract them in UTC, since Python subtracts two times of one zone by their wall clocks)."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    day = now.astimezone(zone).date()
    return (datetime.combine(day, time(0), zone),
            datetime.combine(day + timedelta(days=1), time(0), zone))


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive datetime {now.isoformat()} refused: say which zone it is in")
    return now.astimezone(UTC)


def _good(site: ColumnElement | str, point: str, start: datetime | None, end: datetime) -> list[ColumnElement]:
    where = [_T.c.site_id == site, _T.c.point == point, _T.c.time <= end, _T.c.quality == GOOD,
             _T.c.value.is_not(None)]
    if start is not None:
        where.append(_T.c.time >= start)
    return where


def _edge(column: ColumnElement, site: ColumnElement | str, point: str, start: datetime | None, end: datetime,
          newest: bool) -> ColumnElement:
    """The value (or time) of the first or last good reading of ``point`` in [start, end]."""
    order = _T.c.time.desc() if newest else _T.c.time.asc()
    return select(column).where(*_good(site, point, start, end)).order_by(order).limit(1).scalar_subquery()


def _register_today(first: float | None, last: float | None, first_at: datetime | None,
                    last_at: datetime | None) -> float | None:
    """last - first; None with fewer than two readings, or when the register went back (a meter
    reset or replaced): no number is better than a wrong one."""
    if first is None or last is None or first_at is None or last_at is None or last_at <= first_at:
        return None
    return last - first if last >= first else None


def _status(row: FleetSite, now: datetime, offline_after_s: float) -> str:
    if (now - row.last_seen).total_seconds() > offline_after_s:
        return OFFLINE
    return CATCHING_UP if row.head_seq > row.have_seq else ONLINE


def fleet_overview(engine: Engine, now: datetime, offline_after_s: float = 10.0, tz: ZoneInfo | str = DEFAULT_TZ,
                   known: Mapping[str, str] | None = None, only: str | None = None) -> list[SiteSummary]:
    """Every site, worst first (``SiteSummary.sort_key``).

    ``known``: the sites the aggregator is configured for (id -> name shown); one never heard from is
    listed as NEVER_HEARD, and a configured name replaces the name a site gave itself.
    ``only``: just this site (for a site's page)."""
    now = _aware(now)
    known = dict(known or {})
    start = local_day(now, tz)[0]  # "today" runs from local midnight up to now
    site = _S.c.site_id
    columns = [select(func.max(_T.c.value)).where(*_good(site, POI_KW, start, now)).scalar_subquery().label("peak"),
               _edge(_T.c.value, site, SOC_PCT, None, now, True).label("soc"),
               _edge(_T.c.time, site, SOC_PCT, None, now, True).label("soc_at"),
               _edge(_T.c.value, site, BATTERY_KW, None, now, True).label("bat"),
               _edge(_T.c.time, site, BATTERY_KW, None, now, True).label("bat_at")]
    for prefix, point in (("imp", IMPORT_REGISTER), ("exp", EXPORT_REGISTER)):
        for end_name, newest in (("first", False), ("last", True)):
            columns += [_edge(_T.c.value, site, point, start, now, newest).label(f"{prefix}_{end_name}"),
                        _edge(_T.c.time, site, point, start, now, newest).label(f"{prefix}_{end_name}_at")]
    query = select(FleetSite, *columns)
    alarms_query = (select(FleetAlarm.site_id, FleetAlarm.priority, func.count())
                    .where(FleetAlarm.state.in_(ACTIVE_STATES))  # type: ignore[attr-defined]
                    .group_by(FleetAlarm.site_id, FleetAlarm.priority))
    if only is not None:
        query = query.where(FleetSite.site_id == only)
        alarms_query = alarms_query.where(FleetAlarm.site_id == only)
    with Session(engine) as session:
        rows = session.execute(query).all()
        counts: dict[str, dict[int, int]] = {}
        for site_id, priority, n in session.execute(alarms_query).all():
            counts.setdefault(site_id, {})[priority] = n

    out: list[SiteSummary] = []
    for row in rows:
        s: FleetSite = row[0]
        f = row._mapping
        peak = f["peak"]
        out.append(SiteSummary(
            site_id=s.site_id, name=known.get(s.site_id) or s.name or s.site_id,
            status=_status(s, now, offline_after_s), last_seen=s.last_seen,
            age_s=(now - s.last_seen).total_seconds(), backlog=max(0, s.head_seq - s.have_seq),
            lag_s=None if s.last_record_time is None else (now - s.last_record_time).total_seconds(),
            alarms={p: counts.get(s.site_id, {}).get(p, 0) for p in PRIORITIES},
            import_kwh=_register_today(f["imp_first"], f["imp_last"], f["imp_first_at"], f["imp_last_at"]),
            export_kwh=_register_today(f["exp_first"], f["exp_last"], f["exp_first_at"], f["exp_last_at"]),
            peak_import_kw=None if peak is None else max(0.0, peak),
            soc_pct=f["soc"], soc_at=f["soc_at"], battery_kw=f["bat"], battery_at=f["bat_at"]))
    heard = {s.site_id for s in out}
    for site_id, name in known.items():
        if site_id not in heard and (only is None or only == site_id):
            out.append(SiteSummary(site_id=site_id, name=name or site_id, status=NEVER_HEARD, last_seen=None,
                                   age_s=None, backlog=0, lag_s=None, alarms=dict.fromkeys(PRIORITIES, 0)))
    return sorted(out, key=SiteSummary.sort_key)


def fleet_sites(engine: Engine, known: Mapping[str, str] | None = None) -> dict[str, str]:
    """site id -> name of every site heard from or configured, by name (for choosing one)."""
    known = dict(known or {})
    with Session(engine) as session:
        heard = {site_id: name for site_id, name in session.execute(select(FleetSite.site_id, FleetSite.name))}
    names = {site_id: known.get(site_id) or heard.get(site_id) or site_id for site_id in heard.keys() | known.keys()}
    return dict(sorted(names.items(), key=lambda kv: (kv[1].lower(), kv[0])))


def site_alarms(engine: Engine, site: str, active_only: bool = True) -> list[FleetAlarm]:
    """The site's alarms, most urgent first (priority, then newest raised). ``active_only``: those
    not back to normal — active, shelved, or cleared but not yet acknowledged at the site (the same
    list as the site's own "Open alarms")."""
    query = select(FleetAlarm).where(FleetAlarm.site_id == site)
    if active_only:
        query = query.where(FleetAlarm.state != Alarm.STATE_NORMAL)
    query = query.order_by(FleetAlarm.priority, FleetAlarm.raised.desc(), FleetAlarm.alarm_id)  # type: ignore[attr-defined]
    with Session(engine) as session:
        return list(session.execute(query).scalars().all())


ALARM_EVENT = {0: "raised", 1: "cleared", 2: "acknowledged", 3: "shelved", 4: "unshelved"}


def _site_event(record: FleetRecord) -> SiteEvent:
    body = json.loads(record.body)
    when = utc_from_ns(int(body["time_ns"])) if "time_ns" in body else record.time
    if record.kind == "alarm_events":
        what = f"{body.get('code', '?')} {ALARM_EVENT.get(int(body.get('event', -1)), 'changed')}"
        return SiteEvent(when, "alarm", body.get("source", ""), what, body.get("message", ""), body.get("user") or "")
    user = ""
    if body.get("data_json"):
        try:
            user = str(json.loads(body["data_json"]).get("user", ""))
        except (ValueError, AttributeError):  # details the edge sent that are not a JSON object
            user = ""
    return SiteEvent(when, "event", body.get("source", ""), body.get("kind", ""), body.get("message", ""), user)


def site_events(engine: Engine, site: str, limit: int = 50, since: datetime | None = None,
                kinds: tuple[str, ...] = ("events", "alarm_events")) -> list[SiteEvent]:
    """The site's newest events and alarm transitions, newest first. ``since`` bounds the scan: the
    (site, time) index walks back through telemetry records too, and events are rare among them."""
    query = select(FleetRecord).where(FleetRecord.site_id == site,
                                      FleetRecord.kind.in_(kinds))  # type: ignore[attr-defined]
    if since is not None:
        query = query.where(FleetRecord.time >= _aware(since))
    query = query.order_by(FleetRecord.time.desc(), FleetRecord.seq.desc()).limit(limit)  # type: ignore[attr-defined]
    with Session(engine) as session:
        return [_site_event(r) for r in session.execute(query).scalars().all()]


REPORT_EVENT = "report"  # the reporter node's event kind (nodes/reporter.py)
# The aggregator stores every body as json.dumps(body, separators=(",", ":")) (fleet_store._stage_batch), so
# a report event's body holds exactly this text. The same text inside data_json or the message is escaped
# (\"kind\":...) and does not match; a body that matches but is not a report event is dropped in Python.
_REPORT_BODY = '%"kind":"report"%'


def _text(data: dict[str, Any], name: str, problems: list[str]) -> str:
    value = data.get(name)
    if isinstance(value, str):
        return value
    problems.append(f"{name} missing" if value is None else f"{name} not text")
    return ""


def _site_report(record: FleetRecord) -> SiteReport | None:
    """The announcement with whatever of it is readable; None when the body is not a report event."""
    try:
        body = json.loads(record.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):  # it did match the report text: show it as unreadable, not hide it
        return SiteReport(record.time, "", "", {}, "", {}, "", "", "announcement is not a JSON object")
    if body.get("kind") != REPORT_EVENT:
        return None
    source, message = (body.get(k) if isinstance(body.get(k), str) else "" for k in ("source", "message"))
    # record.time is the event's time_ns: the uplink stamps the record with it (nodes/uplink.py)
    try:
        data = json.loads(body.get("data_json") or "{}")
    except (TypeError, ValueError):
        data = None
    if not isinstance(data, dict) or not data:  # the uplink forwards details it cannot read as {}
        return SiteReport(record.time, "", "", {}, "", {}, source, message,
                          "details missing" if data == {} else "details are not a JSON object")
    problems: list[str] = []
    report, period, digest = (_text(data, name, problems) for name in ("report", "period", "figures_sha256"))
    figures = data.get("figures")
    if not isinstance(figures, dict):
        problems.append("figures are not an object")
        figures = {}
    files = data.get("files")
    if not isinstance(files, dict) or not files:  # the reporter keeps at least one format
        problems.append("no file hashes")
        files = {}
    elif not all(isinstance(v, str) for v in files.values()):
        problems.append("a file hash not text")
        files = {k: v for k, v in files.items() if isinstance(v, str)}
    return SiteReport(record.time, report, period, figures, digest, files, source, message, "; ".join(problems))


def site_reports(engine: Engine, site: str, limit: int = 60, since: datetime | None = None) -> list[SiteReport]:
    """The reports the site announced, newest first, at most ``limit``.

    Only the site's "events" records whose stored body holds the report kind are read (a LIKE on the
    JSON text, see ``_REPORT_BODY``). ``since`` bounds the scan, as for ``site_events``: the (site, time)
    index walks back through the site's telemetry too, all of it when the site never made a report.
    An announcement that is only partly readable (details not JSON, figures not an object, a hash
    missing) is listed with what could be read and ``problem`` saying what could not: the site did
    announce a report, and skipping it would hide that. A body that is not JSON at all is listed with
    its time alone."""
    query = select(FleetRecord).where(FleetRecord.site_id == site, FleetRecord.kind == "events",
                                      FleetRecord.body.like(_REPORT_BODY))  # type: ignore[attr-defined]
    if since is not None:
        query = query.where(FleetRecord.time >= _aware(since))
    query = query.order_by(FleetRecord.time.desc(), FleetRecord.seq.desc())  # type: ignore[attr-defined]
    out: list[SiteReport] = []
    with Session(engine) as session:
        # a look-alike the LIKE let through (SQLite's LIKE ignores case) is dropped here: read on until
        # ``limit`` reports, so both backends list the same ones
        offset = 0
        while True:
            rows = session.execute(query.offset(offset).limit(limit)).scalars().all()
            out += [r for r in map(_site_report, rows) if r is not None]
            if len(out) >= limit or len(rows) < limit:
                return out[:limit]
            offset += limit


def site_report_files(engine: Engine, site: str,
                      since: datetime | None = None) -> dict[tuple[str, str], dict[str, ReportFileRef]]:
    """(report, period) -> {format: file} of the report files the site forwarded, newest first by
    announcement; a format sent twice for a period (a report made again) is its newest file. Reads the
    small ``fleet_report_files`` table only, never the bodies; ``since`` bounds it by announcement time."""
    query = select(FleetReportFile).where(FleetReportFile.site_id == site)
    if since is not None:
        query = query.where(FleetReportFile.time >= _aware(since))
    query = query.order_by(FleetReportFile.time.desc(), FleetReportFile.seq.desc())  # type: ignore[attr-defined]
    out: dict[tuple[str, str], dict[str, ReportFileRef]] = {}
    with Session(engine) as session:
        for f in session.execute(query).scalars().all():  # newest first: the first file of a format wins
            out.setdefault((f.report, f.period), {}).setdefault(
                f.format, ReportFileRef(f.name, f.sha256, f.size, f.epoch, f.seq, f.time))
    return out


def report_file_bytes(engine: Engine, site: str, epoch: str, seq: int) -> tuple[str, bytes]:
    """(name, bytes) of a forwarded report file, its SHA-256 checked again against the one it had when
    stored: a database changed since must never serve a file as the site's. Raises LookupError for no
    such file, ValueError (naming the site, the file and both hashes) for bytes that do not match."""
    with Session(engine) as session:
        ref = session.get(FleetReportFile, (site, epoch, seq))
        record = session.get(FleetRecord, (site, epoch, seq))
    if ref is None or record is None:
        raise LookupError(f"site {site}: no forwarded report file at {epoch}/{seq}")
    what = f"site {site}: report file {ref.name} ({ref.report} {ref.period}, record {epoch}/{seq})"
    try:
        body = json.loads(record.body)
        data = base64.b64decode(body["data_b64"], validate=True)
    except (ValueError, TypeError, KeyError, binascii.Error) as exc:
        raise ValueError(f"{what}: the stored record no longer holds the file ({type(exc).__name__}); "
                         f"expected SHA-256 {ref.sha256}; not served") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != ref.sha256 or body.get("sha256") != ref.sha256:
        raise ValueError(f"{what}: SHA-256 {actual} of the stored bytes (record says {body.get('sha256')}) does "
                         f"not match {ref.sha256} checked when it arrived; not served")
    return ref.name, data


def _downsample(times: list[datetime], values: list[float | None], start: datetime, end: datetime,
                max_points: int) -> Series:
    """Mean per equal time slice, so a day at 5 Hz still draws quickly. A slice with readings but no
    good one stays a gap (None); a slice without any reading is left out."""
    if len(times) <= max_points:
        return Series(times, values)
    width = (end - start) / max_points
    slices: dict[int, list[float]] = {}
    for t, v in zip(times, values, strict=True):
        good = slices.setdefault(min(max_points - 1, int((t - start) / width)), [])
        if v is not None:
            good.append(v)
    return Series([start + width * (i + 0.5) for i in sorted(slices)],
                  [sum(slices[i]) / len(slices[i]) if slices[i] else None for i in sorted(slices)])


def site_power_series(engine: Engine, site: str, start: datetime, end: datetime,
                      max_points: int = 1500) -> dict[str, Series]:
    """POI and battery power in [start, end] for a chart: {"poi": ..., "battery": ...}. A reading that is
    not good is a gap (None), never a value; at most ``max_points`` per series (means over equal slices)."""
    start, end = _aware(start), _aware(end)
    out: dict[str, Series] = {}
    with Session(engine) as session:
        for name, point in (("poi", POI_KW), ("battery", BATTERY_KW)):
            rows = session.execute(select(_T.c.time, _T.c.value, _T.c.quality)
                                   .where(_T.c.site_id == site, _T.c.point == point, _T.c.time >= start,
                                          _T.c.time <= end)
                                   .order_by(_T.c.time)).all()
            out[name] = _downsample([r[0] for r in rows], [r[1] if r[2] == GOOD else None for r in rows],
                                    start, end, max_points)
    return out
