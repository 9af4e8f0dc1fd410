"""reporter: at the end of each site day and month, the report from the records, kept with its SHA-256
on the audit chain (``energizeos report`` makes the same on demand).

A day is reported ``settle_s`` after it ends, so its last records are in. Days the node missed (it
was down) are made up, back to ``catch_up_days`` and never before the first recorded telemetry; one
report per check, so a backlog never blocks the node for long.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from energizeos import runtime
from energizeos.nodes.events import EventReporter
from energizeos.records.db import error_line, init_db, make_engine, redacted
from energizeos.records.models import Telemetry
from energizeos.records.types import ns_from_utc
from energizeos.reports import store
from energizeos.reports.build import ReportError, build_report, period_bounds
from energizeos.reports.figures import ReportSettings
from energizeos.reports.render import FORMATS
from energizeos.runtime import Node, ParameterDescriptor
from energizeos.tariffs import TariffError, load_tariff


class Reporter(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("reporter", **kwargs)
        p = self.declare_parameter
        url = p("db_url", "", ParameterDescriptor("records database; empty: the site default")).value
        formats = p("formats", "pdf,html,csv", ParameterDescriptor("comma-separated: pdf, html, csv")).value
        self.formats = [f.strip() for f in formats.split(",") if f.strip()]
        if not self.formats or any(f not in FORMATS for f in self.formats):
            raise runtime.ParameterError(f"node 'reporter': parameter 'formats' = {formats!r}: "
                                         f"use a comma-separated list of {', '.join(FORMATS)}")
        self.settings = ReportSettings(
            site=p("site", "site", ParameterDescriptor("site name on the reports")).value,
            timezone=p("timezone", "America/Los_Angeles", ParameterDescriptor("site time zone")).value,
            tariff=p("tariff", "sdge-al-tou", ParameterDescriptor("tariff name or file")).value,
            bess_kwh=p("bess_kwh", 1000.0, ParameterDescriptor("usable energy", min_value=1.0)).value,
            pcs_kw=p("pcs_kw", 500.0, ParameterDescriptor("PCS rating", min_value=1.0)).value,
            export_limit_kw=p("export_limit_kw", 0.0, ParameterDescriptor("export limit", min_value=0.0)).value,
            export_deadband_kw=p("export_deadband_kw", 1.0, ParameterDescriptor(
                "export within this of the limit is not an event", min_value=0.0)).value,
            max_hold_s=p("max_hold_s", 5.0, ParameterDescriptor(
                "a recorded sample stands for at most this long", min_value=0.01, max_value=3600.0)).value,
            adherence_tolerance_kw=p("adherence_tolerance_kw", 25.0, ParameterDescriptor(
                "an interval within this of its plan follows it", min_value=0.0)).value)
        self.settle_s = p("settle_s", 300.0, ParameterDescriptor(
            "wait after a period ends before reporting it", min_value=0.0, max_value=86400.0)).value
        self.catch_up_days = p("catch_up_days", 7, ParameterDescriptor(
            "missed days made up at start", min_value=1, max_value=366)).value
        check_s = p("check_period_s", 60.0, ParameterDescriptor(
            "how often the node looks for a period to report", min_value=0.1, max_value=3600.0)).value
        try:
            ZoneInfo(self.settings.timezone)
            load_tariff(self.settings.tariff)
        except (TariffError, KeyError, ValueError) as exc:
            raise runtime.ParameterError(f"node 'reporter': {exc}") from exc
        self.engine = make_engine(url or None)
        self._first_data: datetime | None = None
        self.kept: list[store.StoredReport] = []
        self.events = EventReporter(self)
        self.create_timer(check_s, self.check)
        self.get_logger().info(f"reporting from {redacted(self.engine)} as {', '.join(self.formats)}")

    def now(self) -> datetime:
        return self.get_clock().now().to_datetime().astimezone(ZoneInfo(self.settings.timezone))

    def due(self) -> list[tuple[str, str]]:
        """Periods that have ended (and settled), have data after them, and have no report yet."""
        settled = self.now() - timedelta(seconds=self.settle_s)
        first = self._first_telemetry()
        if first is None:
            return []
        out = []
        last_day = settled.date() - timedelta(days=1)
        for back in range(self.catch_up_days - 1, -1, -1):
            day = last_day - timedelta(days=back)
            out.append(("daily", day.isoformat()))
        month_end = date(settled.year, settled.month, 1)
        last_month = (month_end - timedelta(days=1)).strftime("%Y-%m")
        out.append(("monthly", last_month))
        due = []
        for kind, label in out:
            begin, end = period_bounds(kind, label, self.settings.timezone)
            if end <= first or end > settled:
                continue
            if not store.stored(self.engine, kind, ns_from_utc(begin)):
                due.append((kind, label))
        return due

    def _first_telemetry(self) -> datetime | None:
        if self._first_data is None:
            with Session(self.engine) as session:
                self._first_data = session.exec(select(func.min(Telemetry.time))).one()  # type: ignore[arg-type]
        return self._first_data

    def check(self) -> None:
        try:
            init_db(self.engine)
            due = self.due()
            if due:
                self.report(*due[0])
        except ReportError as exc:
            self.get_logger().error(str(exc))
        except (SQLAlchemyError, OSError) as exc:  # database away, disk full: try again at the next check
            self.get_logger().warning(f"reports wait: {error_line(exc)}")

    def report(self, kind: str, label: str) -> list[store.StoredReport]:
        now = self.get_clock().now()
        doc = build_report(self.engine, kind, label, self.settings, now.to_datetime())
        kept = [store.save(self.engine, doc, fmt, self.get_name(), now_ns=now.nanoseconds) for fmt in self.formats]
        self.kept += kept
        # on the bus for the historian and the uplink: remote parties get the figures, the files' hashes and
        # (the formats the uplink forwards) the files
        self.events.report("report", f"{kind} report {label} ready", report=kind, period=label,
                           figures_sha256=doc.figures_sha256, figures=doc.figures,
                           files={k.format: k.sha256 for k in kept}, paths={k.format: str(k.path) for k in kept})
        self.get_logger().info(f"{kind} report {label}: " + ", ".join(f"{k.path.name} sha256 {k.sha256[:12]}…"
                                                                    for k in kept))
        return kept


def main(args: list[str] | None = None) -> None:
    runtime.run_node(Reporter, args)


if __name__ == "__main__":
    main()
