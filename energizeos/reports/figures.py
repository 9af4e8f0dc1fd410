"""Report figures computed from recorded data only (pure: no database, no clock). Each figure is
defined in docs/reports.md; the names here are the names in the CSV.

Sign conventions: POI power > 0 imports from the grid; BESS (PCS AC) power > 0 discharges. The
site load without the battery is reconstructed as POI + BESS power.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, datetime
from statistics import median

import numpy as np

from energizeos.reports.data import (
    BESS_KW,
    POI_EXPORT_REGISTER,
    POI_IMPORT_REGISTER,
    POI_KW,
    SOC_PCT,
    THRESHOLD_KW,
    AlarmRaise,
    FollowedPlan,
    InterlockChange,
    PeriodData,
    PointSummary,
)
from energizeos.reports.series import Bins, Held
from energizeos.tariffs import Tariff
from energizeos_msgs.msg import Alarm

DEMAND_S = 900
PRIORITY_NAMES = {Alarm.PRIORITY_CRITICAL: "critical", Alarm.PRIORITY_HIGH: "high", Alarm.PRIORITY_MEDIUM: "medium",
                  Alarm.PRIORITY_LOW: "low"}
NO_INTERLOCK_RECORD = "no interlock record"
NO_DATA = "no POI data recorded"


@dataclass(frozen=True)
class ReportSettings:
    site: str = "site"
    timezone: str = "America/Los_Angeles"
    tariff: str = "sdge-al-tou"
    bess_kwh: float = 1000.0  # usable nameplate energy: one equivalent full cycle discharges this much
    pcs_kw: float = 500.0
    export_limit_kw: float = 0.0  # export beyond this (plus the deadband) is an export-limit event
    export_deadband_kw: float = 1.0  # meter noise around the limit is not an event
    max_hold_s: float = 5.0  # a sample stands for at most this long; beyond it the record has a gap
    adherence_tolerance_kw: float = 25.0  # an interval follows its plan when within this of it

    def __post_init__(self) -> None:
        for name in ("bess_kwh", "pcs_kw", "max_hold_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"report setting {name} must be > 0, got {getattr(self, name)}")
        for name in ("export_limit_kw", "export_deadband_kw", "adherence_tolerance_kw"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"report setting {name} must be >= 0, got {getattr(self, name)}")


def kwh(kws: float | np.ndarray) -> float:
    return float(np.sum(kws)) / 3600.0


def edges(begin_s: float, end_s: float, step_s: float) -> np.ndarray:
    n = round((end_s - begin_s) / step_s)
    return begin_s + step_s * np.arange(n + 1, dtype=float)


# --- energy and the battery ------------------------------------------------------------------------
def energy(data: PeriodData, settings: ReportSettings) -> dict:
    span = np.array([data.begin_s, data.end_s])
    poi, bess = data.series[POI_KW].bins(span), data.series[BESS_KW].bins(span)
    imported, exported = kwh(poi.pos_kws), kwh(poi.neg_kws)
    discharged, charged = kwh(bess.pos_kws), kwh(bess.neg_kws)
    soc = data.summaries[SOC_PCT]
    out: dict[str, float | None] = {
        "poi_import_kwh": imported, "poi_export_kwh": exported,
        "poi_import_register_kwh": register_delta(data.summaries[POI_IMPORT_REGISTER]),
        "poi_export_register_kwh": register_delta(data.summaries[POI_EXPORT_REGISTER]),
        "bess_discharged_kwh": discharged, "bess_charged_kwh": charged,
        "round_trip_efficiency_pct": 100.0 * discharged / charged if charged >= 1.0 else None,
        "round_trip_efficiency_soc_corrected_pct": None,
        "equivalent_full_cycles": discharged / settings.bess_kwh,
        "soc_min_pct": soc.minimum, "soc_max_pct": soc.maximum, "soc_start_pct": soc.start, "soc_end_pct": soc.end,
    }
    if soc.start is not None and soc.end is not None:
        stored_in = charged + (soc.start - soc.end) / 100.0 * settings.bess_kwh  # energy taken from storage is input
        if stored_in >= 1.0:
            out["round_trip_efficiency_soc_corrected_pct"] = 100.0 * discharged / stored_in
    return out


def register_delta(register: PointSummary) -> float | None:
    """The meter's own energy register: its last reading in the period minus its reading at the start."""
    return None if register.start is None or register.end is None else register.end - register.start


# --- data gaps -------------------------------------------------------------------------------------
def gaps(data: PeriodData) -> dict[str, list[tuple[float, float]]]:
    """Gaps of every point read sample by sample (the threshold is only drawn: it has none to count)."""
    return {p: held.gaps(data.begin_s, data.end_s) for p, held in data.series.items() if p != THRESHOLD_KW}


# --- demand: 15-minute averages with and without the battery --------------------------------------
@dataclass(frozen=True)
class Demand:
    edges: np.ndarray  # 15-minute interval boundaries
    with_kw: np.ndarray  # POI average (NaN: the interval has a gap)
    without_kw: np.ndarray  # POI + BESS average (NaN: a gap in either)
    on_peak: np.ndarray  # bool, by the tariff

    def peak(self, which: str, on_peak_only: bool = False) -> tuple[float | None, float | None]:
        """(kW, interval start epoch) of the highest complete interval, or (None, None)."""
        kw = self.with_kw if which == "with" else self.without_kw
        usable = np.isfinite(kw) & (self.on_peak if on_peak_only else True)
        if not usable.any():
            return None, None
        i = int(np.argmax(np.where(usable, kw, -np.inf)))
        return float(kw[i]), float(self.edges[i])


def demand(data: PeriodData, tariff: Tariff) -> Demand:
    e = edges(data.begin_s, data.end_s, DEMAND_S)
    poi = data.series[POI_KW].bins(e).mean()
    bess = data.series[BESS_KW].bins(e).mean()
    prices = tariff.interval_prices(datetime.fromtimestamp(e[0], UTC), len(e) - 1, DEMAND_S)
    return Demand(e, poi, poi + bess, np.asarray(prices.on_peak_demand, dtype=bool))


# --- export-limit events ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportEvent:
    start_s: float
    end_s: float
    max_export_kw: float
    export_kwh: float  # all energy exported during the event
    excess_kwh: float  # the part beyond the export limit

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def export_events(poi: Held, begin_s: float, end_s: float, settings: ReportSettings) -> list[ExportEvent]:
    """Runs of held POI samples exporting more than limit + deadband; a gap or a sample back within the
    limit ends an event. Durations and energies are over the held spans, clipped to the period."""
    start, end = np.clip(poi.start, begin_s, end_s), np.clip(poi.end, begin_s, end_s)
    over = (poi.value < -(settings.export_limit_kw + settings.export_deadband_kw)) & (end > start)
    idx = np.flatnonzero(over)
    if not idx.size:
        return []
    # a new run wherever the previous over-limit segment is not the one right before and touching this one
    breaks = np.flatnonzero((np.diff(idx) != 1) | (start[idx[1:]] > end[idx[:-1]] + 1e-6)) + 1
    events = []
    for run in np.split(idx, breaks):
        seconds = end[run] - start[run]
        export = -poi.value[run]
        events.append(ExportEvent(float(start[run[0]]), float(end[run[-1]]), float(export.max()),
                                  kwh(export * seconds), kwh((export - settings.export_limit_kw) * seconds)))
    return events


# --- availability ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Availability:
    period_s: float
    available_s: float
    losses_s: dict[str, float] = field(default_factory=dict)  # cause -> seconds (causes can overlap)

    @property
    def pct(self) -> float:
        return 100.0 * self.available_s / self.period_s if self.period_s else 0.0


def availability(interlocks: list[InterlockChange], poi: Held, begin_s: float, end_s: float) -> Availability:
    """Dispatchable time: the arbiter's interlock chain permitted dispatch (every permissive healthy,
    no fault, data fresh) and the POI was being recorded. Each blocked second is charged to every
    permissive that was down; a second with no record at all to "no POI data recorded"."""
    bounds = [begin_s] + [min(max(c.t_s, begin_s), end_s) for c in interlocks] + [end_s]
    states: list[InterlockChange | None] = [None, *interlocks]
    available = 0.0
    losses: dict[str, float] = {}

    def lose(cause: str, seconds: float) -> None:
        if seconds > 1e-9:
            losses[cause] = losses.get(cause, 0.0) + seconds

    for state, a, b in zip(states, bounds[:-1], bounds[1:], strict=True):
        if b <= a:
            continue
        covered = float(poi.bins(np.array([a, b])).covered_s[0])
        lose(NO_DATA, (b - a) - covered)
        if state is None:
            lose(NO_INTERLOCK_RECORD, covered)
        elif state.dispatch_permitted:
            available += covered
        else:
            for cause in state.failed or ("dispatch blocked (no permissive named)",):
                lose(cause, covered)
    return Availability(end_s - begin_s, available, dict(sorted(losses.items(), key=lambda kv: -kv[1])))


# --- alarms ----------------------------------------------------------------------------------------
def alarm_stats(alarms: list[AlarmRaise]) -> dict[str, dict]:
    out = {}
    for priority, name in PRIORITY_NAMES.items():
        here = [a for a in alarms if a.priority == priority]
        ack_s = [a.acked_s - a.raised_s for a in here if a.acked_s is not None]
        out[name] = {"raised": len(here), "acknowledged": len(ack_s), "unacknowledged": len(here) - len(ack_s),
                     "median_ack_s": median(ack_s) if ack_s else None, "max_ack_s": max(ack_s) if ack_s else None}
    return out


# --- plan adherence --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Adherence:
    intervals: int  # 15-minute intervals with a plan in force and complete BESS data
    planned_kw: np.ndarray
    actual_kw: np.ndarray
    plan_ids: tuple[int, ...]

    def figures(self, tolerance_kw: float) -> dict:
        if not self.intervals:
            return {"plan_intervals": 0, "plan_mae_kw": None, "plan_within_tolerance_pct": None,
                    "planned_discharge_kwh": None, "actual_discharge_kwh": None, "planned_charge_kwh": None,
                    "actual_charge_kwh": None}
        h = DEMAND_S / 3600.0
        error = np.abs(self.actual_kw - self.planned_kw)
        return {"plan_intervals": self.intervals, "plan_mae_kw": float(error.mean()),
                "plan_within_tolerance_pct": 100.0 * float((error <= tolerance_kw).mean()),
                "planned_discharge_kwh": float(np.maximum(self.planned_kw, 0).sum() * h),
                "actual_discharge_kwh": float(np.maximum(self.actual_kw, 0).sum() * h),
                "planned_charge_kwh": float(np.maximum(-self.planned_kw, 0).sum() * h),
                "actual_charge_kwh": float(np.maximum(-self.actual_kw, 0).sum() * h)}


def planned_kw_at(plans: list[FollowedPlan], approved_s: list[float],
                  interval_start_s: float) -> tuple[float, int] | None:
    """The plan in force for an interval: the latest one approved by its start that covers it
    (``plans`` sorted by approval time, ``approved_s`` their approval times)."""
    approved_by_then = bisect_right(approved_s, interval_start_s)
    for plan in reversed(plans[:approved_by_then]):
        index = int((interval_start_s - plan.start_s) // plan.interval_s)
        if plan.start_s <= interval_start_s and index < len(plan.p_kw):
            return plan.p_kw[index], plan.plan_id
    return None


def adherence(plans: list[FollowedPlan], bess_bins: Bins) -> Adherence:
    actual = bess_bins.mean()
    planned, real, ids = [], [], []
    approved_s = [p.approved_s for p in plans]
    for start, value in zip(bess_bins.edges[:-1], actual, strict=True):
        found = planned_kw_at(plans, approved_s, float(start))
        if found is None or not np.isfinite(value):
            continue
        planned.append(found[0])
        real.append(value)
        ids.append(found[1])
    return Adherence(len(planned), np.array(planned), np.array(real), tuple(dict.fromkeys(ids)))
