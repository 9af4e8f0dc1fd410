"""The battery LP (HiGHS): minimise energy cost + demand charges over a horizon of intervals.

Variables per interval i: charge c_i, discharge d_i (AC kW, both >= 0), grid import g_i, export
x_i (<= export limit), SOC s_i (kWh, at the end of the interval); per month m: the month's
non-coincident peak D_m and on-peak peak N_m, each at least the peak already set this month.

    g_i - x_i = load_i + c_i - d_i                       power balance at the POI
    s_i = s_{i-1} + dt (eta_c c_i - d_i / eta_d)         SOC dynamics
    D_m >= g_i (i in m),  N_m >= g_i (i in m, on-peak)   demand on 15-minute intervals
    |(d_i - c_i) - (d_{i-1} - c_{i-1})| <= ramp          interval-to-interval ramp
    s_end + short >= target                              soft terminal SOC (short costs value_per_kwh)

The objective also takes hold_value_per_kwh x sum(s_i) off: a tie-break far below any price, so that among
equally cheap plans the battery is charged early and spent late (HOLD_VALUE_PER_KWH below).

Every hard constraint that could make the problem infeasible (export limit, SOC window, ramp from
the present output) has a slack with a large penalty, so the solver always answers and a non-zero
slack names the binding constraint and the interval: an infeasible day is reported, never papered
over with a default.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field

import highspy
import numpy as np

INF = highspy.kHighsInf
SLACK_COST = 1e4  # $/kW(h) of violation: far above any tariff, so a slack is used only when nothing else works
# Demand charges leave many plans of the same cost. Among them the LP keeps energy in the battery rather than
# spending it early: each kWh held at the end of an interval is worth this much ($). It only breaks ties: a kWh
# held all day is worth 0.001 $, a tenth of the wear on discharging it. Against the same model without it
# (where HiGHS's pick among equal plans decided), over 2025 at a 60 s step, of the perfect-foresight savings:
# LargeOffice 0.890 -> 0.913, Hospital 0.828 -> 0.888, MediumOffice 0.836 -> 0.893, Warehouse 0.752 -> 0.828.
# It is left out of the cost the plan reports.
HOLD_VALUE_PER_KWH = 1e-5


@dataclass(frozen=True)
class Battery:
    power_kw: float = 500.0  # PCS rating, charge and discharge
    energy_kwh: float = 1000.0  # usable nameplate energy
    soc_min_pct: float = 10.0
    soc_reserve_pct: float = 5.0  # kept above soc_min (the arbiter's floor is min + reserve)
    soc_max_pct: float = 95.0
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    ramp_kw_per_interval: float = 500.0
    degradation_per_kwh: float = 0.01  # $ per kWh discharged: stops cycling for a spread smaller than wear

    @property
    def floor_pct(self) -> float:
        return self.soc_min_pct + self.soc_reserve_pct

    def kwh(self, pct: float) -> float:
        return self.energy_kwh * pct / 100.0


@dataclass(frozen=True)
class Prices:
    """What the tariff says about each interval (see energizeos.tariffs: ``Tariff.interval_prices``)."""

    energy_rate: np.ndarray  # $/kWh imported
    export_rate: np.ndarray  # $/kWh exported (0 for a non-export site)
    on_peak: np.ndarray  # bool: counts for the on-peak demand charge
    month: list[str]  # month key per interval, e.g. "2025-07"
    max_demand_rate: dict[str, float]  # $/kW per month
    on_peak_demand_rate: dict[str, float]


@dataclass(frozen=True)
class Problem:
    load_kw: np.ndarray  # forecast (or actual) site load per interval, kW
    prices: Prices
    battery: Battery
    soc_start_pct: float
    interval_s: int = 900
    export_limit_kw: float = 0.0
    prior_peak_kw: dict[str, float] = field(default_factory=dict)  # peak already set this month
    prior_on_peak_kw: dict[str, float] = field(default_factory=dict)
    previous_p_kw: float | None = None  # the present BESS output, for the ramp of the first interval
    terminal_soc_pct: float | None = None  # soft target; None: the start SOC
    terminal_value_per_kwh: float | None = None  # None: the highest energy rate of the horizon
    # the first ``head_intervals`` (a plan's own day, before a look-ahead) also have demand peaks of their own,
    # charged at ``head_peak_weight`` x the rates: without them the day may ride up to a peak that only the
    # look-ahead's forecast sets, and that may not come
    head_intervals: int = 0
    head_peak_weight: float = 0.0
    hold_value_per_kwh: float = HOLD_VALUE_PER_KWH  # the tie-break (0: none)


@dataclass
class Result:
    ok: bool  # solved with every hard constraint met
    status: str
    p_kw: np.ndarray  # BESS AC power per interval, + discharge / - charge
    soc_pct: np.ndarray  # SOC at the end of each interval
    grid_kw: np.ndarray  # planned POI import (+) / export (-)
    cost: float  # objective: energy + demand charges + terminal shortfall + wear
    peak_kw: dict[str, float]
    on_peak_kw: dict[str, float]
    binding: list[str] = field(default_factory=list)  # why it is infeasible, one line per violated constraint
    notes: list[str] = field(default_factory=list)
    solve_s: float = 0.0
    # what one more kWh stored at the end of each interval would save over the rest of the horizon ($/kWh):
    # the SOC rows' shadow prices. A shorter plan that ends there prices a kWh short of this plan's SOC with it
    soc_value_per_kwh: np.ndarray = field(default_factory=lambda: np.zeros(0))


class _Model:
    """A small LP builder on top of highspy. Constraints are added a block at a time (one row per interval of
    a kind) and laid out interval by interval, each interval's rows in the order their kinds were added: the
    row-wise matrix HiGHS gets is the one a per-interval loop would write, built with numpy. The layout matters:
    demand charges leave many equally cheap plans, and which one HiGHS returns depends on how the model is given
    and solved (the same rows with presolve off took LargeOffice's year from 0.890 to 0.853 of perfect
    foresight), so keeping the layout keeps the plans and the measured savings."""

    SLOTS = 16  # row kinds per interval

    def __init__(self) -> None:
        self.cost: list[np.ndarray] = []
        self.lower: list[np.ndarray] = []
        self.upper: list[np.ndarray] = []
        self.n_col = 0
        # per block: row sort key (interval x SLOTS + slot), row bounds, and its entries (row, col, value)
        self.keys: list[np.ndarray] = []
        self.row_lower: list[np.ndarray] = []
        self.row_upper: list[np.ndarray] = []
        self.entries: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.n_row = 0
        self.position = np.zeros(0, dtype=np.int64)  # row id as added -> row in the model HiGHS gets

    def var(self, n: int, lower: float | np.ndarray, upper: float | np.ndarray, cost: float | np.ndarray) -> np.ndarray:
        for out, v in ((self.cost, cost), (self.lower, lower), (self.upper, upper)):
            out.append(np.broadcast_to(np.asarray(v, dtype=float), (n,)))
        self.n_col += n
        return np.arange(self.n_col - n, self.n_col)

    def rows(self, intervals: np.ndarray, slot: int, lower: float | np.ndarray, upper: float | np.ndarray,
             cols: list[np.ndarray | int], values: list[float | np.ndarray]) -> np.ndarray:
        """One row per interval in ``intervals``: sum_k values[k] x column cols[k] within [lower, upper]
        (each of cols / values is one per interval or one for all). Returns the rows' ids as added."""
        intervals = np.asarray(intervals, dtype=np.int64)
        r = len(intervals)
        if r == 0:
            return np.zeros(0, dtype=np.int64)
        rows = self.n_row + np.arange(r)
        self.n_row += r
        self.keys.append(intervals * self.SLOTS + slot)
        self.row_lower.append(np.broadcast_to(np.asarray(lower, dtype=float), (r,)))
        self.row_upper.append(np.broadcast_to(np.asarray(upper, dtype=float), (r,)))
        k = len(cols)
        col = np.column_stack([np.broadcast_to(np.asarray(c, dtype=np.int64), (r,)) for c in cols])
        val = np.column_stack([np.broadcast_to(np.asarray(v, dtype=float), (r,)) for v in values])
        self.entries.append((np.repeat(rows, k), col.ravel(), val.ravel()))
        return rows

    def lp(self) -> highspy.HighsLp:
        """The model as HiGHS takes it, rows interval by interval."""
        order = np.argsort(np.concatenate(self.keys), kind="stable")  # row ids in the interval-by-interval layout
        position = np.empty_like(order)
        position[order] = np.arange(len(order))
        self.position = position
        row, col, val = (np.concatenate(part) for part in zip(*self.entries, strict=True))
        entry_order = np.argsort(position[row], kind="stable")  # entries keep their order within a row
        counts = np.bincount(position[row], minlength=self.n_row)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = self.n_col, self.n_row
        lp.col_cost_ = np.concatenate(self.cost)
        lp.col_lower_, lp.col_upper_ = np.concatenate(self.lower), np.concatenate(self.upper)
        lp.row_lower_ = np.concatenate(self.row_lower)[order]
        lp.row_upper_ = np.concatenate(self.row_upper)[order]
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_ = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        lp.a_matrix_.index_ = col[entry_order].astype(np.int32)
        lp.a_matrix_.value_ = val[entry_order]
        return lp

    def solve(self) -> tuple[str, np.ndarray, np.ndarray, float]:
        """(status, column values, row duals by row id as added, objective)."""
        h = _quiet_highs()
        h.passModel(self.lp())
        h.run()
        status = h.modelStatusToString(h.getModelStatus())
        if status != "Optimal":
            return status, np.zeros(self.n_col), np.zeros(self.n_row), h.getInfo().objective_function_value
        solution = h.getSolution()
        duals = np.array(solution.row_dual)  # empty when HiGHS has no dual values: the duals then read 0
        duals = duals[self.position] if solution.dual_valid and duals.size == self.n_row else np.zeros(self.n_row)
        return status, np.array(solution.col_value), duals, h.getInfo().objective_function_value


def _quiet_highs() -> highspy.Highs:
    """A solver object without the banner HiGHS writes to stdout (file descriptor 1) the first time:
    ``--json`` output must stay one JSON object."""
    global _BANNER_SHOWN
    if _BANNER_SHOWN:
        h = highspy.Highs()
    else:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), 1)
                h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        _BANNER_SHOWN = True
    h.setOptionValue("output_flag", False)
    return h


_BANNER_SHOWN = False


def solve(problem: Problem) -> Result:
    """Plan the battery over the horizon; see the module docstring for the model."""
    started = time.perf_counter()
    p, b = problem, problem.battery
    n = len(p.load_kw)
    if n == 0:
        raise ValueError("empty horizon: no intervals to plan")
    for name in ("energy_rate", "export_rate", "on_peak"):
        if len(getattr(p.prices, name)) != n or len(p.prices.month) != n:
            raise ValueError(f"prices.{name} has {len(getattr(p.prices, name))} intervals, the load has {n}")
    if not np.all(np.isfinite(p.load_kw)):
        raise ValueError(f"the load has {int(np.sum(~np.isfinite(p.load_kw)))} missing intervals: fill or fall "
                         "back before planning")
    notes: list[str] = []
    dt = p.interval_s / 3600.0
    floor, ceiling = b.kwh(b.floor_pct), b.kwh(b.soc_max_pct)
    soc0 = b.kwh(p.soc_start_pct)
    if not floor <= soc0 <= ceiling:  # a measured SOC outside the window is clamped, and said so
        clamped = min(max(soc0, floor), ceiling)
        notes.append(f"measured SOC {p.soc_start_pct:.1f} % is outside the planning window "
                     f"{b.floor_pct:g}-{b.soc_max_pct:g} %: planned from {100 * clamped / b.energy_kwh:.1f} %")
        soc0 = clamped
    target = b.kwh(p.terminal_soc_pct) if p.terminal_soc_pct is not None else soc0
    target = min(max(target, floor), ceiling)
    value = p.terminal_value_per_kwh if p.terminal_value_per_kwh is not None else float(np.max(p.prices.energy_rate))

    m = _Model()
    c = m.var(n, 0.0, b.power_kw, 0.0)  # wear is charged once, on discharge
    d = m.var(n, 0.0, b.power_kw, b.degradation_per_kwh * dt)
    g = m.var(n, 0.0, INF, p.prices.energy_rate * dt)
    x = m.var(n, 0.0, INF, -p.prices.export_rate * dt)
    s = m.var(n, 0.0, INF, -p.hold_value_per_kwh)
    x_slack = m.var(n, 0.0, INF, SLACK_COST * dt)  # export beyond the limit
    # the SOC window costs more to break than the export limit: when both cannot hold, what really
    # happens (and is reported) is export, since the BMS will not let the SOC leave its window
    lo_slack = m.var(n, 0.0, INF, 10 * SLACK_COST)  # SOC below the floor
    hi_slack = m.var(n, 0.0, INF, 10 * SLACK_COST)  # SOC above the ceiling
    ramp_slack = m.var(n, 0.0, INF, SLACK_COST)
    short = m.var(1, 0.0, INF, value)[0]  # terminal shortfall, kWh
    months = list(dict.fromkeys(p.prices.month))
    peak = {mo: m.var(1, p.prior_peak_kw.get(mo, 0.0), INF, p.prices.max_demand_rate.get(mo, 0.0))[0]
            for mo in months}
    on_peak = {mo: m.var(1, p.prior_on_peak_kw.get(mo, 0.0), INF, p.prices.on_peak_demand_rate.get(mo, 0.0))[0]
               for mo in months}
    head = min(p.head_intervals, n) if p.head_peak_weight > 0 else 0
    head_months = list(dict.fromkeys(p.prices.month[:head]))
    head_peak = {mo: m.var(1, p.prior_peak_kw.get(mo, 0.0), INF,
                           p.head_peak_weight * p.prices.max_demand_rate.get(mo, 0.0))[0] for mo in head_months}
    head_on_peak = {mo: m.var(1, p.prior_on_peak_kw.get(mo, 0.0), INF,
                              p.head_peak_weight * p.prices.on_peak_demand_rate.get(mo, 0.0))[0] for mo in head_months}
    eta_c, eta_d = b.charge_efficiency, b.discharge_efficiency
    every, later = np.arange(n), np.arange(1, n)
    load = np.asarray(p.load_kw, dtype=float)
    on = np.asarray(p.prices.on_peak, dtype=bool)
    peak_of = np.array([peak[mo] for mo in p.prices.month])  # each interval's month's peak variable
    m.rows(every, 0, load, load, [g, x, c, d], [1.0, -1.0, -1.0, 1.0])  # g - x - c + d = load
    m.rows(every, 1, -INF, p.export_limit_kw, [x, x_slack], [1.0, -1.0])
    # s_i - s_{i-1} - dt eta_c c_i + dt/eta_d d_i = 0 (= soc0 for the first interval)
    soc_rows = np.concatenate([m.rows([0], 2, soc0, soc0, [s[0], c[0], d[0]], [1.0, -dt * eta_c, dt / eta_d]),
                               m.rows(later, 2, 0.0, 0.0, [s[1:], s[:-1], c[1:], d[1:]],
                                      [1.0, -1.0, -dt * eta_c, dt / eta_d])])
    m.rows(every, 3, floor, INF, [s, lo_slack], [1.0, 1.0])
    m.rows(every, 4, -INF, ceiling, [s, hi_slack], [1.0, -1.0])
    m.rows(every, 5, 0.0, INF, [peak_of, g], [1.0, -1.0])
    on_intervals = np.flatnonzero(on)
    m.rows(on_intervals, 6, 0.0, INF, [[on_peak[p.prices.month[i]] for i in on_intervals], g[on_intervals]],
           [1.0, -1.0])
    if head:
        head_of = np.array([head_peak[mo] for mo in p.prices.month[:head]])
        m.rows(np.arange(head), 7, 0.0, INF, [head_of, g[:head]], [1.0, -1.0])
        head_on = np.flatnonzero(on[:head])
        m.rows(head_on, 8, 0.0, INF, [[head_on_peak[p.prices.month[i]] for i in head_on], g[head_on]], [1.0, -1.0])
    # (d_i - c_i) - (d_{i-1} - c_{i-1}) within +-ramp
    ramp_cols = [d[1:], c[1:], d[:-1], c[:-1], ramp_slack[1:]]
    m.rows(later, 9, -INF, b.ramp_kw_per_interval, ramp_cols, [1.0, -1.0, -1.0, 1.0, -1.0])
    m.rows(later, 10, -b.ramp_kw_per_interval, INF, ramp_cols, [1.0, -1.0, -1.0, 1.0, 1.0])
    if p.previous_p_kw is not None:  # the first interval's ramp from the present output
        m.rows([0], 9, p.previous_p_kw - b.ramp_kw_per_interval, INF, [d[0], c[0], ramp_slack[0]], [1.0, -1.0, 1.0])
        m.rows([0], 10, -INF, p.previous_p_kw + b.ramp_kw_per_interval, [d[0], c[0], ramp_slack[0]],
               [1.0, -1.0, -1.0])
    m.rows([n], 0, target, INF, [s[n - 1], short], [1.0, 1.0])  # after the last interval's rows

    status, sol, duals, objective = m.solve()
    if status != "Optimal":
        return Result(False, status, np.zeros(n), np.full(n, math.nan), np.array(p.load_kw, dtype=float), math.inf,
                      {}, {}, [f"solver status {status}"], notes, time.perf_counter() - started)
    binding = _violations(p, sol, x_slack, lo_slack, hi_slack, ramp_slack, floor, ceiling)
    p_kw = sol[d] - sol[c]
    shortfall = float(sol[short])
    if shortfall > 1e-3:
        notes.append(f"ends {shortfall:.1f} kWh below the terminal SOC target ({100 * target / b.energy_kwh:.1f} %): "
                     "charging it back would cost more than it is worth")
    return Result(ok=not binding, status="infeasible" if binding else "optimal", p_kw=p_kw,
                  soc_pct=100.0 * sol[s] / b.energy_kwh, grid_kw=sol[g] - sol[x],
                  cost=float(objective) + p.hold_value_per_kwh * float(np.sum(sol[s])),
                  peak_kw={mo: float(sol[v]) for mo, v in peak.items()},
                  on_peak_kw={mo: float(sol[v]) for mo, v in on_peak.items()}, binding=binding, notes=notes,
                  solve_s=time.perf_counter() - started,
                  # a kWh added to interval i's SOC row is a kWh more stored at its end: it saves -dual
                  soc_value_per_kwh=-duals[soc_rows])


def _violations(p: Problem, sol: np.ndarray, x_slack, lo_slack, hi_slack, ramp_slack, floor: float,
                ceiling: float, tol: float = 1e-4) -> list[str]:
    """One line per hard constraint that had to give (first interval of each kind, and how many)."""
    out = []
    for name, slack, unit, what in (
            ("export limit", x_slack, "kW", f"export above {p.export_limit_kw:g} kW"),
            ("SOC floor", lo_slack, "kWh", f"SOC below {p.battery.floor_pct:g} % ({floor:.0f} kWh)"),
            ("SOC ceiling", hi_slack, "kWh", f"SOC above {p.battery.soc_max_pct:g} % ({ceiling:.0f} kWh)"),
            ("ramp", ramp_slack, "kW", f"a step larger than {p.battery.ramp_kw_per_interval:g} kW per interval")):
        bad = np.flatnonzero(sol[slack] > tol)
        if bad.size:
            i = int(bad[0])
            out.append(f"{name} binds: interval {i} needs {what} by {sol[slack][i]:.1f} {unit}"
                       + (f" ({bad.size} intervals in all)" if bad.size > 1 else ""))
    return out
