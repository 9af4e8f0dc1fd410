"""Building a daily or monthly report from the records: read the period, compute the figures, lay them
out as tables, notes and chart data (``ReportDoc``). Rendering is ``render/``'s job."""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy.engine import Engine

from energizeos.reports import figures as fig
from energizeos.reports.data import (
    BESS_KW,
    MONTHLY_POINTS,
    POI_KW,
    SAMPLED_POINTS,
    SOC_PCT,
    THRESHOLD_KW,
    PeriodData,
    read_period,
)
from energizeos.reports.document import DayProfile, MonthlyPeaks, ReportDoc, Table, Waterfall
from energizeos.reports.figures import ReportSettings
from energizeos.tariffs import Bill, compute_bill, load_tariff

KINDS = ("daily", "monthly")
BILL_STEP_S = 60
MAX_LISTED = 50  # rows of a list table (alarms, gaps, events) before "and N more"


class ReportError(ValueError):
    """A report that cannot be made as asked (bad period, bad settings)."""


def period_bounds(kind: str, label: str, tz: str) -> tuple[datetime, datetime]:
    """Site-local [start, end) of "YYYY-MM-DD" (daily) or "YYYY-MM" (monthly)."""
    zone = ZoneInfo(tz)
    if kind == "daily":
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", label):
            raise ReportError(f"daily report date {label!r}: expected YYYY-MM-DD")
        try:
            day = date.fromisoformat(label)
        except ValueError as exc:
            raise ReportError(f"daily report date {label!r}: {exc}") from None
        nxt = day + timedelta(days=1)
        return (datetime(day.year, day.month, day.day, tzinfo=zone),
                datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone))
    if kind == "monthly":
        m = re.fullmatch(r"(\d{4})-(\d{2})", label)
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise ReportError(f"monthly report month {label!r}: expected YYYY-MM with a month 01-12")
        year, month = int(m.group(1)), int(m.group(2))
        ny, nm = (year + 1, 1) if month == 12 else (year, month + 1)
        return datetime(year, month, 1, tzinfo=zone), datetime(ny, nm, 1, tzinfo=zone)
    raise ReportError(f"unknown report kind {kind!r}; one of {', '.join(KINDS)}")


def build_report(engine: Engine, kind: str, label: str, settings: ReportSettings,
                 now: datetime | None = None) -> ReportDoc:
    begin, end = period_bounds(kind, label, settings.timezone)
    points = SAMPLED_POINTS if kind == "daily" else MONTHLY_POINTS
    data = read_period(engine, begin, end, settings.max_hold_s, points)
    return compose(kind, label, data, settings, now or datetime.now(UTC))


def compose(kind: str, label: str, data: PeriodData, settings: ReportSettings, now: datetime) -> ReportDoc:
    """The report from period data (pure: everything it shows comes from ``data``)."""
    zone = ZoneInfo(settings.timezone)
    begin = datetime.fromtimestamp(data.begin_s, zone)
    end = datetime.fromtimestamp(data.end_s, zone)
    doc = ReportDoc(kind=kind, site=settings.site, period_label=label, period_start=begin, period_end=end,
                    timezone=settings.timezone, generated_at=now.astimezone(UTC),
                    audit_head=f"seq {data.audit_seq} · {data.audit_hash}", figures_sha256="", has_data=False)
    poi = data.series[POI_KW]
    doc.has_data = poi.bins(np.array([data.begin_s, data.end_s])).covered_s[0] > 0
    if not doc.has_data:
        doc.notes.append(f"No recorded data for this period: the records hold no POI meter reading between "
                         f"{begin:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} ({settings.timezone}).")
        doc.figures = {"has_data": False, "period_s": data.end_s - data.begin_s}
        doc.figures_sha256 = figures_digest(doc.figures)
        return doc
    _Composer(doc, data, settings, zone).run()
    doc.figures_sha256 = figures_digest(doc.figures)
    return doc


def figures_digest(figures: dict) -> str:
    canonical = json.dumps(figures, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class _Composer:
    def __init__(self, doc: ReportDoc, data: PeriodData, settings: ReportSettings, zone: ZoneInfo) -> None:
        self.doc, self.data, self.settings, self.zone = doc, data, settings, zone
        self.tariff = load_tariff(settings.tariff)
        self.f: dict = {"has_data": True, "period_s": data.end_s - data.begin_s}
        doc.figures = self.f
        self.minute_edges = fig.edges(data.begin_s, data.end_s, BILL_STEP_S)
        self._minutes: dict = {}

    def local(self, t_s: float | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str | None:
        return None if t_s is None else datetime.fromtimestamp(t_s, self.zone).strftime(fmt)

    def run(self) -> None:
        self.gaps()
        self.energy()
        self.demand_and_savings()
        self.exports()
        self.availability()
        self.alarms()
        self.adherence()
        if self.doc.kind == "daily":
            self.profile()

    # --- sections ----------------------------------------------------------------------------------
    def gaps(self) -> None:
        gaps = fig.gaps(self.data)
        rows = []
        for point, spans in gaps.items():
            name = point.rsplit("/", 2)[-2] + "/" + point.rsplit("/", 1)[-1]
            self.f[f"gap_s[{point}]"] = float(sum(b - a for a, b in spans))
            self.f[f"gaps[{point}]"] = len(spans)
            rows += [[name, self.local(a), self.local(b), b - a] for a, b in spans]
        total = self.f[f"gap_s[{POI_KW}]"]
        self.f["poi_coverage_pct"] = 100.0 * (1.0 - total / self.f["period_s"])
        if any(self.f[f"gaps[{p}]"] for p in gaps):
            self.doc.notes.append(
                f"Data gaps: the POI meter record has {self.f[f'gaps[{POI_KW}]']} gap(s), {total / 60:.1f} min in all "
                f"(coverage {self.f['poi_coverage_pct']:.2f} %). Gaps are left out of every figure, never filled; "
                "energy and peaks may be understated by what happened in them.")
        self.doc.tables.append(Table("Data gaps", ["point", "from", "to", "seconds"], _capped(rows),
                                     f"A sample stands for at most {self.settings.max_hold_s:g} s; a stale or invalid "
                                     "reading is a gap." if rows else "No gaps."))

    def energy(self) -> None:
        e = fig.energy(self.data, self.settings)
        self.f.update(e)
        self.doc.tables.append(Table("Energy at the POI", ["figure", "value", "unit"], [
            ["imported (integrated)", e["poi_import_kwh"], "kWh"],
            ["exported (integrated)", e["poi_export_kwh"], "kWh"],
            ["imported (meter register)", e["poi_import_register_kwh"], "kWh"],
            ["exported (meter register)", e["poi_export_register_kwh"], "kWh"],
        ], "Integrated from the recorded POI power; the meter's own registers are shown as a cross-check."))
        self.doc.tables.append(Table("Battery", ["figure", "value", "unit"], [
            ["discharged (AC)", e["bess_discharged_kwh"], "kWh"],
            ["charged (AC)", e["bess_charged_kwh"], "kWh"],
            ["round-trip efficiency", e["round_trip_efficiency_pct"], "%"],
            ["round-trip efficiency, SOC-corrected", e["round_trip_efficiency_soc_corrected_pct"], "%"],
            ["equivalent full cycles", e["equivalent_full_cycles"], "cycles"],
            ["SOC min / max", _pair(e["soc_min_pct"], e["soc_max_pct"]), "%"],
            ["SOC start / end", _pair(e["soc_start_pct"], e["soc_end_pct"]), "%"],
        ], f"Round-trip efficiency = discharged / charged; SOC-corrected counts the SOC change at "
           f"{self.settings.bess_kwh:g} kWh as input. Cycles = discharged / {self.settings.bess_kwh:g} kWh."))

    def demand_and_savings(self) -> None:
        d = fig.demand(self.data, self.tariff)
        self.demand = d
        rows = []
        for label, which, on_peak in (("max demand (non-coincident)", "", False), ("on-peak demand", "on_peak_", True)):
            kw_with, at_with = d.peak("with", on_peak)
            kw_without, at_without = d.peak("without", on_peak)
            self.f[f"peak_{which}kw_with"], self.f[f"peak_{which}kw_with_at"] = kw_with, self.local(at_with)
            self.f[f"peak_{which}kw_without"], self.f[f"peak_{which}kw_without_at"] = kw_without, self.local(at_without)
            rows.append([label, kw_without, self.local(at_without, "%m-%d %H:%M"), kw_with,
                         self.local(at_with, "%m-%d %H:%M"), _minus(kw_without, kw_with)])
        self.doc.tables.append(Table("Peak demand (15-minute average import)", [
            "demand", "without battery kW", "at", "with battery kW", "at", "shaved kW"], rows,
            "Without battery = POI + BESS power, interval by interval. An interval with a gap is left out."))
        self.savings()
        if self.doc.kind == "monthly":
            self.monthly_peaks()

    def minute_bins(self, point: str):
        """One-minute bins of a point, computed once: the bills and the day chart both use them."""
        if point not in self._minutes:
            self._minutes[point] = self.data.series[point].bins(self.minute_edges)
        return self._minutes[point]

    def bills(self) -> tuple[Bill, Bill]:
        poi = self.minute_bins(POI_KW).mean()
        bess = self.minute_bins(BESS_KW).mean()
        start = datetime.fromtimestamp(self.minute_edges[0], UTC)
        monthly = self.doc.kind == "monthly"
        return (compute_bill(self.tariff, start, poi + bess, BILL_STEP_S, bill_demand=monthly),
                compute_bill(self.tariff, start, poi, BILL_STEP_S, bill_demand=monthly))

    def savings(self) -> None:
        without, with_ = self.bills()
        items_without = [it for m in without.months.values() for it in m.line_items]
        items_with = [it for m in with_.months.values() for it in m.line_items]

        def total(items, kinds=None) -> float:
            return float(sum(it.amount for it in items if kinds is None or it.kind in kinds))

        self.f["bill_without_bess"], self.f["bill_with_bess"] = total(items_without), total(items_with)
        self.f["savings"] = self.f["bill_without_bess"] - self.f["bill_with_bess"]
        steps = [("bill without battery", self.f["bill_without_bess"])]
        for name, kinds in (("energy", ("energy", "export")), ("max_demand", ("max_demand",)),
                            ("on_peak_demand", ("on_peak_demand",)), ("fixed", ("fixed",))):
            saved = total(items_without, kinds) - total(items_with, kinds)
            self.f[f"{name}_savings"] = saved
            billed = any(it.kind in kinds for it in [*items_without, *items_with])
            if billed and kinds != ("fixed",):
                steps.append((f"{name.replace('_', ' ')} savings", -saved))
        steps.append(("bill with battery", self.f["bill_with_bess"]))
        self.doc.waterfall = Waterfall(steps)
        names = list(dict.fromkeys(it.name for it in [*items_without, *items_with]))
        by_name = lambda items: {it.name: it for it in items}  # noqa: E731 - local shorthand
        w, b = by_name(items_without), by_name(items_with)
        rows = [[n, _attr(w.get(n), "quantity"), _attr(w.get(n), "unit") or _attr(b.get(n), "unit"),
                 _attr(w.get(n), "amount"), _attr(b.get(n), "quantity"), _attr(b.get(n), "amount"),
                 _minus(_attr(w.get(n), "amount") or 0.0, _attr(b.get(n), "amount") or 0.0)] for n in names]
        rows.append(["total", None, "", self.f["bill_without_bess"], None, self.f["bill_with_bess"], self.f["savings"]])
        scope = ("the month's bill" if self.doc.kind == "monthly" else
                 "the day's energy and fixed charges (demand charges are monthly: see the monthly report)")
        self.doc.tables.append(Table("Savings against the tariff", [
            "line item", "without qty", "unit", "without $", "with qty", "with $", "saved $"], rows,
            f"{self.tariff.name}: {scope}." + (f" Rates ILLUSTRATIVE as of {self.tariff.rates_as_of}."
                                                  if self.tariff.rates_illustrative else "")))
        for note in [*without.notes, *[n for m in with_.months.values() for n in m.notes]]:
            if note not in self.doc.notes and "bill_demand" not in note:  # the table note says it for readers
                self.doc.notes.append(note)

    def monthly_peaks(self) -> None:
        d, days, peak_with, peak_without = self.demand, [], [], []
        day = self.doc.period_start.date()
        while True:
            lo = datetime(day.year, day.month, day.day, tzinfo=self.zone)
            if lo >= self.doc.period_end:
                break
            nxt = day + timedelta(days=1)
            hi = datetime(nxt.year, nxt.month, nxt.day, tzinfo=self.zone)
            here = (d.edges[:-1] >= lo.timestamp()) & (d.edges[:-1] < hi.timestamp())
            days.append(day)
            peak_with.append(_nanmax(d.with_kw[here]))
            peak_without.append(_nanmax(d.without_kw[here]))
            day = nxt
        self.doc.monthly_peaks = MonthlyPeaks(days, np.array(peak_without), np.array(peak_with))

    def exports(self) -> None:
        s = self.settings
        events = fig.export_events(self.data.series[POI_KW], self.data.begin_s, self.data.end_s, s)
        self.f["export_events"] = len(events)
        self.f["export_largest_kw"] = max((e.max_export_kw for e in events), default=0.0)
        self.f["export_longest_s"] = max((e.duration_s for e in events), default=0.0)
        self.f["export_event_kwh"] = float(sum(e.export_kwh for e in events))
        self.f["export_excess_kwh"] = float(sum(e.excess_kwh for e in events))
        rows = [[self.local(e.start_s), e.duration_s, e.max_export_kw, e.export_kwh, e.excess_kwh] for e in events]
        self.doc.tables.append(Table("Export-limit events", [
            "start", "seconds", "max export kW", "exported kWh", "beyond limit kWh"], _capped(rows),
            f"Export limit {s.export_limit_kw:g} kW with a {s.export_deadband_kw:g} kW deadband. "
            f"{len(events)} event(s); largest {self.f['export_largest_kw']:.1f} kW, longest "
            f"{self.f['export_longest_s']:.1f} s."))

    def availability(self) -> None:
        a = fig.availability(self.data.interlocks, self.data.series[POI_KW], self.data.begin_s, self.data.end_s)
        self.f["availability_pct"], self.f["available_s"] = a.pct, a.available_s
        for cause, seconds in a.losses_s.items():
            self.f[f"availability_loss_s[{cause}]"] = seconds
        rows = [[cause, seconds, 100.0 * seconds / a.period_s] for cause, seconds in a.losses_s.items()]
        self.doc.tables.append(Table(f"Availability {a.pct:.2f} %", ["loss cause", "seconds", "% of period"], rows,
                                     ("" if rows else "No losses. ") + "Dispatchable = the arbiter's interlock chain "
                                     "permitted dispatch and the POI was recorded. Causes overlap when several "
                                     "permissives were down together."))

    def alarms(self) -> None:
        stats = fig.alarm_stats(self.data.alarms)
        self.f["alarms_raised"] = len(self.data.alarms)
        rows = []
        for name, s in stats.items():
            for key, value in s.items():
                self.f[f"alarms_{key}[{name}]"] = value
            rows.append([name, s["raised"], s["acknowledged"], s["unacknowledged"], s["median_ack_s"], s["max_ack_s"]])
        self.doc.tables.append(Table("Alarms by priority", [
            "priority", "raised", "acknowledged", "unacknowledged", "median s to ack", "max s to ack"], rows))
        listed = [[str(a.alarm_id), a.code, a.source, fig.PRIORITY_NAMES.get(a.priority, str(a.priority)),
                   self.local(a.raised_s, "%m-%d %H:%M:%S"), None if a.acked_s is None else a.acked_s - a.raised_s,
                   a.acked_by] for a in self.data.alarms]
        if listed:
            self.doc.tables.append(Table("Alarms raised", [
                "alarm id", "code", "source", "priority", "raised", "s to ack", "acked by"], _capped(listed),
                "An alarm that returns before it is acknowledged keeps its id (ISA-18.2): it is listed per raise."))

    def adherence(self) -> None:
        bins = self.data.series[BESS_KW].bins(self.demand.edges)
        a = fig.adherence(self.data.plans, bins)
        self.f.update(a.figures(self.settings.adherence_tolerance_kw))
        self.f["plan_ids"] = ",".join(str(i) for i in a.plan_ids)
        if not a.intervals:
            self.doc.notes.append("No approved plan was in force in this period: plan adherence not computed.")
            return
        f = self.f
        self.doc.tables.append(Table("Plan adherence (15-minute intervals)", ["figure", "value", "unit"], [
            ["intervals with a plan in force", a.intervals, ""], ["mean absolute deviation", f["plan_mae_kw"], "kW"],
            [f"within ±{self.settings.adherence_tolerance_kw:g} kW", f["plan_within_tolerance_pct"], "%"],
            ["planned / actual discharge", _pair(f["planned_discharge_kwh"], f["actual_discharge_kwh"]), "kWh"],
            ["planned / actual charge", _pair(f["planned_charge_kwh"], f["actual_charge_kwh"]), "kWh"],
        ], f"{len(a.plan_ids)} plan(s) in force (first {a.plan_ids[0]}, last {a.plan_ids[-1]}): each interval "
           "against the latest plan approved before it began."))

    def profile(self) -> None:
        mean = {p: self.minute_bins(p).mean(complete_only=False) for p in (POI_KW, BESS_KW, SOC_PCT, THRESHOLD_KW)}
        self.doc.profile = DayProfile(times=[datetime.fromtimestamp(t, self.zone) for t in self.minute_edges[:-1]],
                                      load_kw=mean[POI_KW] + mean[BESS_KW], poi_kw=mean[POI_KW],
                                      bess_kw=mean[BESS_KW], soc_pct=mean[SOC_PCT], threshold_kw=mean[THRESHOLD_KW])


def _capped(rows: list[list]) -> list[list]:
    if len(rows) <= MAX_LISTED:
        return rows
    return [*rows[:MAX_LISTED], [f"... and {len(rows) - MAX_LISTED} more not listed"] + [None] * (len(rows[0]) - 1)]


def _pair(a: float | None, b: float | None) -> str | None:
    if a is None or b is None:
        return None
    return f"{a:.1f} / {b:.1f}"


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _attr(item, name: str):
    return None if item is None else getattr(item, name)


def _nanmax(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.max()) if finite.size else math.nan

