"""The power-balance CT check judges only settled steps: no false METER_CT_RATIO_ERROR while the
BESS is still ramping, and nothing judged across a trip."""

from __future__ import annotations

from energizeos.nodes.ct_pt_validation import Finding, PowerBalanceCheck

LOAD_KW = 400.0


def feed(check: PowerBalanceCheck, bess: list[float], dt: float = 0.2, ct_gain: float = 1.0,
         t0: float = 0.0) -> list:
    """POI = load - BESS (seen through a CT with ``ct_gain``); returns every non-None result."""
    out = []
    for i, b in enumerate(bess):
        result = check.add(t0 + i * dt, ct_gain * (LOAD_KW - b), b)
        if result is not None:
            out.append(result)
    return out


def ramp(start: float, end: float, steps: int) -> list[float]:
    return [start + (end - start) * i / steps for i in range(1, steps + 1)]


def test_a_settled_step_passes_and_a_wrong_ct_is_found():
    assert feed(PowerBalanceCheck(), [0.0] * 20 + [300.0] * 30) == [True]
    found = feed(PowerBalanceCheck(), [0.0] * 20 + [300.0] * 30, ct_gain=0.66)
    assert isinstance(found[0], Finding) and found[0].code == "METER_CT_RATIO_ERROR"


def test_a_slow_ramp_still_moving_is_not_judged():
    # 0 -> 390 kW over 8 s: the window after the settle time still moves, so no verdict at all
    assert feed(PowerBalanceCheck(), [0.0] * 20 + ramp(0.0, 390.0, 40) + [390.0] * 2) == []
    # the same ramp, then steady: judged once it has settled, and it balances
    results = feed(PowerBalanceCheck(), [0.0] * 20 + ramp(0.0, 390.0, 40) + [390.0] * 40)
    assert all(r is True for r in results)


def test_a_trip_resets_the_watch():
    check = PowerBalanceCheck()
    feed(check, [390.0] * 20 + [0.0] * 3)  # a step starts (the trip) ...
    check.reset()  # ... and the meter node sees the PCS leave the grid
    assert feed(check, [0.0] * 30, t0=4.6) == []
