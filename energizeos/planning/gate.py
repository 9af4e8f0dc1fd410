"""The safety gate: every proposed plan is checked independently of the LP that made it.

The gate recomputes what it can from first principles — the SOC trajectory from the planned power
and the efficiencies, the POI power from the forecast and the plan, the tariff's prices for the
plan's own intervals — so a solver bug, a stale tariff or a hand-edited plan cannot slip through.
Each check gives one line, ``PASS …`` or ``FAIL …``, with the numbers that decided it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from energizeos.planning.lp import Battery

TOL_KW = 0.5
TOL_PCT = 0.5


@dataclass(frozen=True)
class PlanToCheck:
    start: datetime  # aware
    interval_s: int
    p_kw: np.ndarray  # + discharge / - charge
    soc_pct: np.ndarray  # planned SOC at the end of each interval
    load_forecast_kw: np.ndarray
    soc_start_pct: float
    energy_rate: np.ndarray  # the $/kWh the plan was optimised against
    on_peak: np.ndarray  # the on-peak flags it was optimised against


@dataclass(frozen=True)
class GateLimits:
    battery: Battery
    export_limit_kw: float = 0.0
    expected_intervals: int | None = None  # the local day's length (92, 96 or 100), None for a partial re-plan


@dataclass
class GateResult:
    passed: bool
    findings: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        return [f for f in self.findings if f.startswith("FAIL")]


def check(plan: PlanToCheck, limits: GateLimits, tariff_energy_rate: np.ndarray,
          tariff_on_peak: np.ndarray) -> GateResult:
    """Run every check; the plan passes only when all do. ``tariff_*`` are the tariff's prices for the
    plan's intervals, looked up again now (``Tariff.interval_prices``)."""
    findings: list[str] = []
    b, n = limits.battery, len(plan.p_kw)

    def verdict(ok: bool, text: str) -> None:
        findings.append(("PASS " if ok else "FAIL ") + text)

    arrays = {"p_kw": plan.p_kw, "soc_pct": plan.soc_pct, "load_forecast_kw": plan.load_forecast_kw,
              "energy_rate": plan.energy_rate, "on_peak": plan.on_peak}
    lengths = {k: len(v) for k, v in arrays.items()}
    same = len(set(lengths.values())) == 1 and n > 0
    verdict(same, f"shape: {n} intervals of {plan.interval_s} s" if same else f"shape: lengths differ {lengths}")
    if not same:
        return GateResult(False, findings)
    if limits.expected_intervals is not None:
        verdict(n == limits.expected_intervals, f"horizon: {n} intervals for a local day of "
                                                f"{limits.expected_intervals}")
    finite = all(np.all(np.isfinite(np.asarray(v, dtype=float))) for v in arrays.values())
    verdict(finite, "values: all finite" if finite else "values: NaN or infinite values in the plan")
    if not finite:
        return GateResult(False, findings)

    worst = float(np.max(np.abs(plan.p_kw)))
    verdict(worst <= b.power_kw + TOL_KW, f"power: largest |P| {worst:.1f} kW within the {b.power_kw:g} kW rating")

    dt = plan.interval_s / 3600.0
    energy = b.energy_kwh * plan.soc_start_pct / 100.0 + np.cumsum(
        np.where(plan.p_kw < 0, -plan.p_kw * b.charge_efficiency, -plan.p_kw / b.discharge_efficiency) * dt)
    soc = 100.0 * energy / b.energy_kwh
    low, high = float(np.min(soc)), float(np.max(soc))
    verdict(low >= b.floor_pct - TOL_PCT and high <= b.soc_max_pct + TOL_PCT,
            f"SOC: {low:.1f}-{high:.1f} % (recomputed) within {b.floor_pct:g}-{b.soc_max_pct:g} %")
    drift = float(np.max(np.abs(soc - plan.soc_pct)))
    verdict(drift <= TOL_PCT, f"SOC consistency: planned and recomputed SOC differ by at most {drift:.2f} %")

    grid = plan.load_forecast_kw - plan.p_kw
    most_export = float(-np.min(grid))
    verdict(most_export <= limits.export_limit_kw + TOL_KW,
            f"export: at most {max(most_export, 0.0):.1f} kW exported against a {limits.export_limit_kw:g} kW limit")

    steps = np.abs(np.diff(plan.p_kw)) if n > 1 else np.zeros(1)
    verdict(float(np.max(steps)) <= b.ramp_kw_per_interval + TOL_KW,
            f"ramp: largest step {float(np.max(steps)):.1f} kW per interval within {b.ramp_kw_per_interval:g} kW")

    rates_same = len(tariff_energy_rate) == n and np.allclose(tariff_energy_rate, plan.energy_rate, atol=1e-9)
    peaks_same = len(tariff_on_peak) == n and bool(np.all(np.asarray(tariff_on_peak) == np.asarray(plan.on_peak)))
    verdict(rates_same and peaks_same, "tariff: the plan's prices and on-peak intervals match the tariff for its "
                                       "intervals" if rates_same and peaks_same else
            "tariff: the plan was optimised against other prices or periods than the tariff gives now")
    return GateResult(not any(f.startswith("FAIL") for f in findings), findings)
