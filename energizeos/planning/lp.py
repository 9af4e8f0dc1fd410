"""The battery LP (HiGHS): minimise energy cost + demand charges over a horizon of intervals.

Variables per interval i: charge c_i, discharge d_i (AC kW, both >= 0), grid import g_i, export
x_i (<= export limit), SOC s_i (kWh, at the end of the interval); per month m: the month's
non-coincident peak D_m and on-peak peak N_m, each at least the peak already set this month.

    g_i - x_i = load_i + c_i - d_i                       power balance at the POI
    s_i = s_{i-1} + dt (eta_c c_i - d_i / eta_d)         SOC dynamics
    D_m >= g_i (i in m),  N_m >= g_i (i in m, on-peak)   demand on 15-minute intervals
    |(d_i - c_i) - (d_{i-1} - c_{i-1})| <= ramp          interval-to-interval ramp
    s_end + short >= target                              soft terminal SOC (short costs value_per_kwh)

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


class _Model:
    """A small row-wise LP builder on top of highspy."""

    def __init__(self) -> None:
        self.cost: list[float] = []
        self.lower: list[float] = []
        self.upper: list[float] = []
        self.rows: list[tuple[float, float, list[int], list[float]]] = []

    def var(self, n: int, lower: float | np.ndarray, upper: float | np.ndarray, cost: float | np.ndarray) -> np.ndarray:
        start = len(self.cost)
        self.cost += list(np.broadcast_to(np.asarray(cost, dtype=float), (n,)))
        self.lower += list(np.broadcast_to(np.asarray(lower, dtype=float), (n,)))
        self.upper += list(np.broadcast_to(np.asarray(upper, dtype=float), (n,)))
        return np.arange(start, start + n)

    def row(self, lower: float, upper: float, index: list[int], value: list[float]) -> None:
        self.rows.append((lower, upper, index, value))

    def solve(self) -> tuple[str, np.ndarray, float]:
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = len(self.cost), len(self.rows)
        lp.col_cost_ = np.array(self.cost)
        lp.col_lower_, lp.col_upper_ = np.array(self.lower), np.array(self.upper)
        lp.row_lower_ = np.array([r[0] for r in self.rows])
        lp.row_upper_ = np.array([r[1] for r in self.rows])
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        starts, index, value = [0], [], []
        for _lo, _up, idx, val in self.rows:
            index += idx
            value += val
            starts.append(len(index))
        lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = (
            np.array(starts, dtype=np.int32), np.array(index, dtype=np.int32), np.array(value))
        h = _quiet_highs()
        h.passModel(lp)
        h.run()
        status = h.modelStatusToString(h.getModelStatus())
        x = np.array(h.getSolution().col_value) if status == "Optimal" else np.zeros(len(self.cost))
        return status, x, h.getInfo().objective_function_value


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
    s = m.var(n, 0.0, INF, 0.0)
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
    for i in range(n):
        # g - x - c + d = load
        m.row(float(p.load_kw[i]), float(p.load_kw[i]), [g[i], x[i], c[i], d[i]], [1.0, -1.0, -1.0, 1.0])
        m.row(-INF, p.export_limit_kw, [x[i], x_slack[i]], [1.0, -1.0])
        prev = [s[i - 1]] if i else []
        rhs = 0.0 if i else soc0
        # s_i - s_{i-1} - dt eta_c c_i + dt/eta_d d_i = 0 (or = soc0 for the first interval)
        m.row(rhs, rhs, [s[i], *prev, c[i], d[i]], [1.0, *([-1.0] if i else []), -dt * eta_c, dt / eta_d])
        m.row(floor, INF, [s[i], lo_slack[i]], [1.0, 1.0])
        m.row(-INF, ceiling, [s[i], hi_slack[i]], [1.0, -1.0])
        mo = p.prices.month[i]
        m.row(0.0, INF, [peak[mo], g[i]], [1.0, -1.0])
        if p.prices.on_peak[i]:
            m.row(0.0, INF, [on_peak[mo], g[i]], [1.0, -1.0])
        if i < head:
            m.row(0.0, INF, [head_peak[mo], g[i]], [1.0, -1.0])
            if p.prices.on_peak[i]:
                m.row(0.0, INF, [head_on_peak[mo], g[i]], [1.0, -1.0])
        if i:  # (d_i - c_i) - (d_{i-1} - c_{i-1}) within +-ramp
            idx, val = [d[i], c[i], d[i - 1], c[i - 1], ramp_slack[i]], [1.0, -1.0, -1.0, 1.0]
            m.row(-INF, b.ramp_kw_per_interval, idx, [*val, -1.0])
            m.row(-b.ramp_kw_per_interval, INF, idx, [*val, 1.0])
        elif p.previous_p_kw is not None:
            m.row(p.previous_p_kw - b.ramp_kw_per_interval, INF, [d[0], c[0], ramp_slack[0]], [1.0, -1.0, 1.0])
            m.row(-INF, p.previous_p_kw + b.ramp_kw_per_interval, [d[0], c[0], ramp_slack[0]], [1.0, -1.0, -1.0])
    m.row(target, INF, [s[n - 1], short], [1.0, 1.0])

    status, sol, objective = m.solve()
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
                  cost=float(objective), peak_kw={mo: float(sol[v]) for mo, v in peak.items()},
                  on_peak_kw={mo: float(sol[v]) for mo, v in on_peak.items()}, binding=binding, notes=notes,
                  solve_s=time.perf_counter() - started)


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
