"""The fleet pages' settings and formatting: a site summary as a table row, ages, numbers that may be
missing. No Streamlit here (``serve.py`` and the tests use it directly); "—" stands for "no data", never 0."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from energizeos.remote.fleet_queries import (
    CATCHING_UP,
    NEVER_HEARD,
    OFFLINE,
    ONLINE,
    ReportFileRef,
    SiteReport,
    SiteSummary,
)

# What ``serve.py --app fleet`` hands the app (a Streamlit script takes no arguments).
FLEET_DB_URL = "ENERGIZEOS_FLEET_DB_URL"  # empty: $ENERGIZEOS_DB_URL or the SQLite file, as the aggregator
FLEET_SITES = "ENERGIZEOS_FLEET_SITES"  # JSON {site id: name}: the configured sites
FLEET_OFFLINE_S = "ENERGIZEOS_FLEET_OFFLINE_S"
FLEET_TZ = "ENERGIZEOS_FLEET_TZ"
DEFAULT_TZ = "America/Los_Angeles"


@dataclass(frozen=True)
class FleetSettings:
    sites: dict[str, str] = field(default_factory=dict)
    offline_after_s: float = 10.0  # the aggregator's default
    timezone: str = DEFAULT_TZ  # whose day is "today"
    refresh_s: float = 5.0

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FleetSettings:
        sites = json.loads(env.get(FLEET_SITES) or "{}")
        return cls(sites={str(k): str(v) for k, v in sites.items()},
                   offline_after_s=float(env.get(FLEET_OFFLINE_S) or 10.0),
                   timezone=env.get(FLEET_TZ) or DEFAULT_TZ)

    def to_env(self, db_url: str) -> dict[str, str]:
        return {FLEET_DB_URL: db_url, FLEET_SITES: json.dumps(self.sites),
                FLEET_OFFLINE_S: repr(self.offline_after_s), FLEET_TZ: self.timezone}


NONE = "—"
STATUS = {ONLINE: "online", CATCHING_UP: "catching up", OFFLINE: "OFFLINE", NEVER_HEARD: "never heard"}
PRIORITY_COLUMNS = {1: "critical", 2: "high", 3: "medium", 4: "low"}


def number(value: float | None, digits: int = 1) -> str:
    return NONE if value is None else f"{value:,.{digits}f}"


def age(seconds: float | None) -> str:
    """A duration as people say it: 40 s, 12 min, 3 h 05 min, 2.5 d."""
    if seconds is None:
        return NONE
    s = max(0.0, seconds)
    if s < 90:
        return f"{s:.0f} s"
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    if s < 48 * 3600:
        hours, rest = divmod(int(s), 3600)
        return f"{hours} h {rest // 60:02d} min"
    return f"{s / 86400:.1f} d"


def local(value: datetime | None, zone: ZoneInfo, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return NONE if value is None else value.astimezone(zone).strftime(fmt)


def summary_row(s: SiteSummary) -> dict[str, object]:
    row: dict[str, object] = {"site": s.name, "id": s.site_id, "status": STATUS[s.status],
                              "last heard": age(s.age_s) if s.last_seen else "never",
                              "backlog (records)": s.backlog, "data lag": age(s.lag_s)}
    row.update({label: s.alarms.get(p, 0) for p, label in PRIORITY_COLUMNS.items()})
    row.update({"import today kWh": number(s.import_kwh), "export today kWh": number(s.export_kwh),
                "peak import today kW": number(s.peak_import_kw), "SOC %": number(s.soc_pct),
                "battery kW": number(s.battery_kw)})
    return row


def status_line(s: SiteSummary, zone: ZoneInfo) -> str:
    if s.status == NEVER_HEARD:
        return "never heard from: the aggregator has no record of this site yet"
    parts = [f"**{STATUS[s.status]}**", f"last heard {age(s.age_s)} ago ({local(s.last_seen, zone)})"]
    if s.backlog:
        parts.append(f"{s.backlog:,} record(s) still to come")
    parts.append(f"newest record {age(s.lag_s)} old" if s.lag_s is not None else "no records yet")
    return " · ".join(parts)


HASH_SHOWN = 12  # hex digits of a SHA-256 in the reports table; the full value is listed under it
# The figures of a report a manager reads first (names as build_report makes them), with their digits.
REPORT_FIGURES = {"import kWh": ("poi_import_kwh", 1), "export kWh": ("poi_export_kwh", 1),
                  "peak demand kW": ("peak_kw_with", 1), "savings $": ("savings", 2)}


def _figure(figures: Mapping[str, object], name: str, digits: int) -> str:
    """A figure as a number, or "—": missing, None, NaN or not a number (a malformed report) alike."""
    value = figures.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return NONE
    return number(float(value), digits)


def short_hash(digest: str) -> str:
    return digest[:HASH_SHOWN] + "…" if len(digest) > HASH_SHOWN else digest or NONE


def report_row(r: SiteReport, zone: ZoneInfo, here: Sequence[str] = ()) -> dict[str, object]:
    """One announced report as a row of the site page's Reports table; ``here``: the formats of it the
    site forwarded (downloadable at the fleet)."""
    row: dict[str, object] = {"announced (site time)": local(r.time, zone), "report": r.report or NONE,
                              "period": r.period or NONE}
    row.update({label: _figure(r.figures, name, digits) for label, (name, digits) in REPORT_FIGURES.items()})
    row["figures SHA-256"] = short_hash(r.figures_sha256)
    row["files here"] = ", ".join(here) or NONE
    if r.problem:
        note = f"unreadable: {r.problem}" + (f' (announced as "{r.message}")' if r.message else "")
    elif r.figures.get("has_data") is False:
        note = "no data recorded at the site for this period"
    else:
        note = ""
    row["note"] = note
    return row


def report_hashes(reports: Sequence[SiteReport]) -> list[dict[str, str]]:
    """The full SHA-256 values of the figures and of every file, one row per report."""
    formats = list(dict.fromkeys(fmt for r in reports for fmt in r.files))
    return [{"report": r.report or NONE, "period": r.period or NONE, "figures SHA-256": r.figures_sha256 or NONE,
             **{f"{fmt} file SHA-256": r.files.get(fmt, NONE) for fmt in formats}} for r in reports]


FILE_ORDER = ("pdf", "html", "csv")  # as the site's Reports page offers them; any other format after these
MIME = {"pdf": "application/pdf", "html": "text/html", "csv": "text/csv"}


def file_formats(files: Mapping[str, ReportFileRef]) -> list[str]:
    """The formats of one report forwarded to the fleet, in the usual order."""
    return sorted(files, key=lambda fmt: (FILE_ORDER.index(fmt) if fmt in FILE_ORDER else len(FILE_ORDER), fmt))


def file_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    return f"{size / 1024:.1f} kB" if size < 1024 * 1024 else f"{size / 1048576:.1f} MB"


def download_label(fmt: str, ref: ReportFileRef) -> str:
    return f"{fmt.upper()} · {ref.name} ({file_size(ref.size)})"
