"""CT/PT validation of the POI revenue meter: pure checks, each returning findings with the
measured evidence, so an alarm can say exactly what was seen.

- ratio plausibility: the meter's configured CTR/PTR against the nameplate;
- voltage plausibility: primary voltage near nominal (a wrong PTR or a blown PT fuse shows here);
- phase rotation: VB lags VA by 120 deg and VC leads it (ABC);
- power balance / polarity: when the BESS output steps by X kW, POI import must fall by about X kW.
  A reversed CT makes it rise (ratio near -1); a wrong CT ratio scales it (ratio far from 1).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from itertools import pairwise


@dataclass(frozen=True)
class Finding:
    code: str  # alarm catalogue code
    message: str  # plain language with the numbers
    evidence: dict  # the measured values


def check_ratios(ctr: float, ptr: float, nameplate_ctr: float, nameplate_ptr: float,
                 tolerance: float = 0.01) -> list[Finding]:
    findings = []
    if abs(ctr - nameplate_ctr) > tolerance * nameplate_ctr:
        findings.append(Finding("METER_CT_RATIO_MISMATCH",
                                f"meter CTR {ctr:g} differs from the nameplate CTR {nameplate_ctr:g}",
                                {"ctr": ctr, "nameplate_ctr": nameplate_ctr}))
    if abs(ptr - nameplate_ptr) > tolerance * nameplate_ptr:
        findings.append(Finding("METER_PT_RATIO_MISMATCH",
                                f"meter PTR {ptr:g} differs from the nameplate PTR {nameplate_ptr:g}",
                                {"ptr": ptr, "nameplate_ptr": nameplate_ptr}))
    return findings


def check_voltages(v_primary: list[float], nominal_ln: float, band: float = 0.10) -> list[Finding]:
    findings = []
    phases = "ABC"
    lost = [phases[i] for i, v in enumerate(v_primary) if v < 0.5 * nominal_ln]
    if lost and len(lost) < 3:
        findings.append(Finding("METER_PT_FUSE_LOSS",
                                f"phase {', '.join(lost)} voltage below 50 % of nominal "
                                f"({', '.join(f'{v:.1f}' for v in v_primary)} V): PT fuse or wiring",
                                {"v_primary": v_primary, "nominal_ln": nominal_ln}))
    healthy = [v for i, v in enumerate(v_primary) if phases[i] not in lost]
    if healthy:
        mean = sum(healthy) / len(healthy)
        if abs(mean - nominal_ln) > band * nominal_ln:
            findings.append(Finding("METER_PT_RATIO_IMPLAUSIBLE",
                                    f"primary voltage {mean:.1f} V is {100 * (mean / nominal_ln - 1):+.1f} % from "
                                    f"nominal {nominal_ln:.1f} V: check the PT ratio",
                                    {"v_primary_mean": mean, "nominal_ln": nominal_ln}))
    return findings


def _wrap(angle: float) -> float:
    return (angle + 180.0) % 360.0 - 180.0


def check_rotation(v_angles: list[float], tolerance_deg: float = 15.0) -> list[Finding]:
    a, b, c = v_angles
    b_rel, c_rel = _wrap(b - a), _wrap(c - a)
    if abs(b_rel + 120.0) <= tolerance_deg and abs(c_rel - 120.0) <= tolerance_deg:
        return []
    return [Finding("METER_PHASE_ROTATION",
                    f"phase angles B {b_rel:+.0f} deg and C {c_rel:+.0f} deg relative to A; ABC expects -120/+120",
                    {"vb_rel_deg": b_rel, "vc_rel_deg": c_rel})]


@dataclass
class PowerBalanceCheck:
    """Detects BESS steps and compares the POI response with them.

    Feed ``add(t_s, poi_kw, bess_kw)`` at the meter rate. After a step of at least ``min_step_kw``,
    the means ``settle_s`` after the step are compared with the means just before it.
    """

    min_step_kw: float = 50.0
    window_s: float = 2.0
    settle_s: float = 3.0
    tolerance: float = 0.2  # |ratio - 1| accepted
    steady_kw: float = 20.0  # BESS spread allowed in the windows compared: a ramp still moving is not judged
    history: deque = field(default_factory=lambda: deque(maxlen=2000))
    _step: dict | None = None
    last_ratio: float | None = None
    last_evidence: dict | None = None  # the numbers behind the last judged step, passed or failed

    def __post_init__(self) -> None:
        times = [s[0] for s in self.history]
        self._in_order = all(a <= b for a, b in pairwise(times))  # see _window
        self._last_t = times[-1] if times else -math.inf

    def _window(self, low: float, high: float | None) -> list[tuple[float, float, float]]:
        """``[s for s in self.history if low <= s[0] < high]`` (no upper bound for None). While the
        samples are in time order (the node clock's) that is a run at the end: walk back from the
        newest and stop at the first older than ``low``, instead of scanning up to 2000 samples on
        every meter reading."""
        if not self._in_order:
            return [s for s in self.history if low <= s[0] and (high is None or s[0] < high)]
        found = []
        for sample in reversed(self.history):
            if sample[0] < low:
                break
            if high is None or sample[0] < high:
                found.append(sample)
        found.reverse()  # oldest first, as the scan gives them (the sums below add in that order)
        return found

    def reset(self) -> None:
        """Forget the step being watched and the samples before it (the BESS left the grid: POI and BESS
        no longer share a path, so no step may span that time)."""
        self._step = None
        self.history.clear()

    def add(self, t_s: float, poi_kw: float, bess_kw: float) -> Finding | bool | None:
        """Returns a Finding on a failed check, True on a passed one, None while waiting."""
        if not t_s >= self._last_t:  # a clock step back (or NaN): scan the whole history from now on
            self._in_order = False
        self._last_t = t_s
        self.history.append((t_s, poi_kw, bess_kw))
        if self._step is None:
            before = self._window(t_s - self.window_s - 1.0, t_s - 1.0)
            if len(before) < 3:
                return None
            bess_before = sum(s[2] for s in before) / len(before)
            steady = max(s[2] for s in before) - min(s[2] for s in before) <= self.steady_kw
            if steady and abs(bess_kw - bess_before) >= self.min_step_kw:
                poi_before = sum(s[1] for s in before) / len(before)
                self._step = {"t": t_s, "bess_before": bess_before, "poi_before": poi_before}
            return None
        if t_s - self._step["t"] < self.settle_s:
            return None
        after = self._window(t_s - 1.0, None)
        step, self._step = self._step, None
        bess_after = sum(s[2] for s in after) / len(after)
        poi_after = sum(s[1] for s in after) / len(after)
        d_bess = bess_after - step["bess_before"]
        d_poi = poi_after - step["poi_before"]
        if abs(d_bess) < self.min_step_kw:
            return None  # the step did not hold: nothing to judge
        if max(s[2] for s in after) - min(s[2] for s in after) > self.steady_kw:
            return None  # still ramping: the meter and PCS samples are not of the same moment
        ratio = -d_poi / d_bess
        self.last_ratio = ratio
        evidence = {"bess_step_kw": round(d_bess, 1), "poi_change_kw": round(d_poi, 1), "ratio": round(ratio, 3),
                    "bess_before_kw": round(step["bess_before"], 1), "bess_after_kw": round(bess_after, 1),
                    "poi_before_kw": round(step["poi_before"], 1), "poi_after_kw": round(poi_after, 1)}
        self.last_evidence = evidence
        if ratio <= -0.5:
            return Finding("METER_CT_POLARITY_REVERSED",
                           f"BESS output changed by {d_bess:+.1f} kW and POI import changed by {d_poi:+.1f} kW "
                           f"(ratio {ratio:+.2f}, expected +1.00): CT polarity reversed", evidence)
        if abs(ratio - 1.0) > self.tolerance:
            return Finding("METER_CT_RATIO_ERROR",
                           f"BESS output changed by {d_bess:+.1f} kW but POI import changed by {d_poi:+.1f} kW "
                           f"(ratio {ratio:.2f}, expected 1.00 +/- {self.tolerance:.2f}): CT ratio or wiring error",
                           evidence)
        return True
