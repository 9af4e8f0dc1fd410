"""The pure report arithmetic: held samples and their integrals (property-based against a brute-force
loop), export events, availability and the plan in force, on small hand-checkable cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energizeos.reports import figures as fig
from energizeos.reports.data import FollowedPlan, InterlockChange
from energizeos.reports.series import Held

samples_st = st.lists(st.tuples(st.floats(0.0, 5.0), st.one_of(st.none(), st.floats(-500.0, 500.0))),
                      min_size=0, max_size=40)


def build(raw: list[tuple[float, float | None]], hold: float) -> Held:
    t = np.cumsum([dt for dt, _ in raw]) if raw else np.array([])
    v = np.array([np.nan if x is None else x for _, x in raw], dtype=float)
    return Held(t, v, hold)


def brute(held: Held, a: float, b: float) -> tuple[float, float, float]:
    """(net integral, positive part, covered seconds) over [a, b) by walking the samples."""
    net = pos = cover = 0.0
    for i, (t, v) in enumerate(zip(held.t, held.v, strict=True)):
        if math.isnan(v):
            continue
        following = held.t[i + 1] if i + 1 < len(held.t) else math.inf
        lo, hi = max(t, a), min(following, t + held.max_hold_s, b)
        if hi > lo:
            net += v * (hi - lo)
            pos += max(v, 0.0) * (hi - lo)
            cover += hi - lo
    return net, pos, cover


@settings(max_examples=200, deadline=None)
@given(samples_st, st.floats(0.1, 4.0), st.lists(st.floats(-2.0, 120.0), min_size=2, max_size=12))
def test_bin_integrals_equal_a_brute_force_walk_and_add_up(raw, hold, cuts):
    held = build(raw, hold)
    edges = np.array(sorted(set(cuts)))
    if edges.size < 2:
        return
    bins = held.bins(edges)
    for k in range(edges.size - 1):
        net, pos, cover = brute(held, edges[k], edges[k + 1])
        assert math.isclose(bins.net_kws[k], net, abs_tol=1e-6)
        assert math.isclose(bins.pos_kws[k], pos, abs_tol=1e-6)
        assert math.isclose(bins.covered_s[k], cover, abs_tol=1e-9)
        assert -1e-9 <= bins.covered_s[k] <= edges[k + 1] - edges[k] + 1e-9
    whole = held.bins(edges[[0, -1]])
    assert math.isclose(whole.net_kws[0], bins.net_kws.sum(), abs_tol=1e-6)  # bins add up: nothing lost or doubled
    assert math.isclose(whole.pos_kws[0] - whole.neg_kws[0], whole.net_kws[0], abs_tol=1e-6)


@settings(max_examples=100, deadline=None)
@given(samples_st, st.floats(0.1, 4.0))
def test_gaps_and_covered_time_partition_the_span(raw, hold):
    held = build(raw, hold)
    begin, end = 0.0, 60.0
    gaps = held.gaps(begin, end)
    covered = held.bins(np.array([begin, end])).covered_s[0]
    assert math.isclose(sum(b - a for a, b in gaps) + covered, end - begin, abs_tol=1e-6)
    assert all(a < b for a, b in gaps) and all(g[1] <= h[0] for g, h in itertools.pairwise(gaps))


def test_a_stale_sample_or_a_silence_longer_than_the_hold_is_a_gap():
    held = Held(np.array([0.0, 1.0, 2.0, 10.0]), np.array([100.0, np.nan, 50.0, 20.0]), max_hold_s=3.0)
    assert held.gaps(0.0, 12.0) == [(1.0, 2.0), (5.0, 10.0)]  # the bad sample, then 2 + 3 s of hold until 10
    bins = held.bins(np.array([0.0, 12.0]))
    assert bins.net_kws[0] == 100 * 1 + 50 * 3 + 20 * 2 and bins.covered_s[0] == 6.0
    assert math.isnan(bins.mean()[0]) and held.bins(np.array([10.0, 12.0])).mean()[0] == 20.0


def test_export_events_count_duration_magnitude_and_energy():
    # 1 s samples: export 30 kW for 3 s, back to import, then 100 kW and 60 kW for 2 s, then a gap
    v = [10, -30, -30, -30, 5, -100, -60, np.nan, -80]
    held = Held(np.arange(len(v), dtype=float), np.array(v, dtype=float), max_hold_s=1.0)
    events = fig.export_events(held, 0.0, 9.0, fig.ReportSettings(export_limit_kw=20.0, export_deadband_kw=1.0))
    assert [(e.start_s, e.duration_s, e.max_export_kw) for e in events] == [(1.0, 3.0, 30.0), (5.0, 2.0, 100.0),
                                                                          (8.0, 1.0, 80.0)]
    assert events[1].export_kwh == pytest.approx(160 / 3600) and events[1].excess_kwh == pytest.approx(120 / 3600)


def test_availability_charges_blocked_time_to_each_failed_permissive_and_missing_records():
    poi = Held(np.arange(0.0, 100.0), np.where(np.arange(100) < 90, 1.0, np.nan), max_hold_s=1.0)  # no data 90-100
    changes = [InterlockChange(-5.0, True, ()), InterlockChange(20.0, False, ("bms.permissive", "meter.fresh")),
               InterlockChange(50.0, True, ())]
    a = fig.availability(changes, poi, 0.0, 100.0)
    assert a.available_s == 20 + 40 and a.pct == 60.0
    assert a.losses_s == {"bms.permissive": 30.0, "meter.fresh": 30.0, fig.NO_DATA: 10.0}
    assert fig.availability([], poi, 0.0, 100.0).losses_s[fig.NO_INTERLOCK_RECORD] == 90.0


def test_the_plan_in_force_is_the_latest_approved_before_the_interval():
    day = FollowedPlan(1, approved_s=-100.0, start_s=0.0, interval_s=900, p_kw=(10.0, 20.0, 30.0, 40.0))
    replan = FollowedPlan(2, approved_s=1000.0, start_s=900.0, interval_s=900, p_kw=(-5.0, -6.0))
    plans = [day, replan]
    approved = [p.approved_s for p in plans]
    assert fig.planned_kw_at(plans, approved, 0.0) == (10.0, 1)
    assert fig.planned_kw_at(plans, approved, 900.0) == (20.0, 1)  # the re-plan was approved after 900 s
    assert fig.planned_kw_at(plans, approved, 1800.0) == (-6.0, 2)
    assert fig.planned_kw_at(plans, approved, 2700.0) == (40.0, 1)  # the re-plan ends: the day plan still covers
    assert fig.planned_kw_at(plans, approved, 3600.0) is None


def test_report_settings_refuse_nonsense():
    with pytest.raises(ValueError, match="max_hold_s must be > 0"):
        fig.ReportSettings(max_hold_s=0)
    with pytest.raises(ValueError, match="export_deadband_kw must be >= 0"):
        fig.ReportSettings(export_deadband_kw=-1)
