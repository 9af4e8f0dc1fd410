"""Dispatch strategies: pure functions from measured site values to a requested BESS power.

Every strategy works on the site load reconstructed from the meter and the PCS, load = POI + BESS,
so a load change feeds forward into the next request at once instead of waiting for the loop to
see its own error. Sign conventions: BESS > 0 discharges; POI > 0 imports. The safety arbiter
still clips every request; a strategy only says what it would like.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Request:
    p_kw: float
    reason: str


def site_load(poi_kw: float, bess_kw: float) -> float:
    return poi_kw + bess_kw


def export_limit(poi_kw: float, bess_kw: float, limit_kw: float = 0.0, margin_kw: float = 10.0) -> Request:
    """Zero export / export limit with self-consumption: hold the POI at ``margin_kw`` of import
    (or at -limit + margin): discharge into the load, absorb any surplus."""
    load = site_load(poi_kw, bess_kw)
    target_poi = -limit_kw + margin_kw
    p = load - target_poi
    return Request(p, f"hold POI at {target_poi:+.0f} kW: site load {load:.1f} kW -> BESS {p:+.1f} kW")


def peak_shaving(poi_kw: float, bess_kw: float, threshold_kw: float, recharge_below_kw: float,
                 recharge_allowed: bool, recharge_max_kw: float) -> Request:
    """Keep POI import under ``threshold_kw``; recharge (only in allowed TOU windows) while the
    load stays under ``recharge_below_kw``, without pushing the POI above that level."""
    load = site_load(poi_kw, bess_kw)
    if load > threshold_kw:
        p = load - threshold_kw
        return Request(p, f"site load {load:.1f} kW above the {threshold_kw:.0f} kW threshold: discharge {p:.1f} kW")
    if recharge_allowed and load < recharge_below_kw:
        p = -min(recharge_max_kw, recharge_below_kw - load)
        return Request(p, f"site load {load:.1f} kW under {recharge_below_kw:.0f} kW in a recharge window: "
                          f"charge {-p:.1f} kW")
    return Request(0.0, f"site load {load:.1f} kW: no shaving needed" +
                   ("" if recharge_allowed else ", outside the recharge windows"))


def threshold_baseline(poi_kw: float, bess_kw: float, peak_shaving_kw: float, recharge_kw: float) -> Request:
    """The fixed-threshold baseline of OpenEMS's Controller.Symmetric.PeakShaving: on the grid power
    without the ESS (meter + ESS), discharge above ``peakShavingPower``, charge below
    ``rechargePower``, otherwise idle. Kept as a benchmark."""
    load = site_load(poi_kw, bess_kw)
    if load >= peak_shaving_kw:
        p = load - peak_shaving_kw
        return Request(p, f"grid without ESS {load:.1f} kW >= peakShavingPower {peak_shaving_kw:.0f} kW")
    if load <= recharge_kw:
        p = load - recharge_kw
        return Request(p, f"grid without ESS {load:.1f} kW <= rechargePower {recharge_kw:.0f} kW")
    return Request(0.0, "grid without ESS between rechargePower and peakShavingPower: idle")


def plan_value(p_kw: list[float], start_s: float, interval_s: float, now_s: float) -> float | None:
    """The planned power for now, or None outside the plan."""
    if interval_s <= 0 or now_s < start_s:
        return None
    index = int((now_s - start_s) // interval_s)
    return p_kw[index] if index < len(p_kw) else None


def parse_windows(text: str) -> list[tuple[float, float]]:
    """'0-6,10-14' -> [(0, 6), (10, 14)] in local hours; a clear error for anything else."""
    windows = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        start, sep, end = part.partition("-")
        try:
            window = (float(start), float(end))
        except ValueError:
            raise ValueError(f"recharge window {part!r} must be written HH-HH, e.g. 0-6") from None
        if not sep or not 0 <= window[0] < window[1] <= 24:
            raise ValueError(f"recharge window {part!r} must be HH-HH with 0 <= start < end <= 24")
        windows.append(window)
    return windows


def in_windows(hour: float, windows: list[tuple[float, float]]) -> bool:
    return any(start <= hour < end for start, end in windows)
