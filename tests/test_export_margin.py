"""The export margin sized from the site's own load (nodes/export_margin.py), and the dispatcher using it.

The margin is the largest drop of the site load over one control period in the last window, within
[min_kw, max_kw], and max_kw until a whole window has been watched.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energizeos.nodes.export_margin import ExportMargin
from energizeos_msgs.msg import DispatchRequest
from tests.test_dispatch_strategies import Site

PROPERTY = settings(max_examples=150, deadline=None, derandomize=True)


def feed(margin: ExportMargin, loads: list[float], period_s: float = 60.0, t0: float = 0.0) -> float:
    for i, kw in enumerate(loads):
        margin.add(t0 + i * period_s, kw)
    return t0 + (len(loads) - 1) * period_s


def test_the_margin_is_the_largest_one_period_drop_once_a_window_is_watched():
    m = ExportMargin(60.0, min_kw=1.0, max_kw=10.0, window_s=3600.0, bucket_s=600.0)
    assert m.margin_kw() == 10.0 and m.largest_drop_kw() is None
    # an hour of 60 s readings: drops of 1.5 (30 -> 28.5) and 3.0 (33 -> 30), rises do not count
    loads = [30.0, 28.5, 33.0, 30.0] + [30.0] * 57
    end = feed(m, loads)
    assert end == 3600.0 and m.largest_drop_kw() == pytest.approx(3.0)
    assert m.margin_kw() == pytest.approx(3.0)


def test_before_a_whole_window_the_margin_is_the_largest_allowed():
    m = ExportMargin(60.0, min_kw=1.0, max_kw=10.0, window_s=3600.0, bucket_s=600.0)
    feed(m, [30.0, 29.0] * 30)  # 59 min: drops of 1 kW seen, but not a whole hour yet
    assert m.largest_drop_kw() == pytest.approx(1.0) and m.margin_kw() == 10.0
    m.add(3600.0, 30.0)
    assert m.margin_kw() == pytest.approx(1.0)


def test_the_margin_stays_within_its_bounds():
    small = ExportMargin(60.0, min_kw=2.0, max_kw=10.0, window_s=600.0, bucket_s=60.0)
    feed(small, [50.0] * 11)  # a flat load: no drop, yet never under min_kw
    assert small.margin_kw() == 2.0
    large = ExportMargin(60.0, min_kw=2.0, max_kw=10.0, window_s=600.0, bucket_s=60.0)
    feed(large, [50.0, 20.0] + [20.0] * 9)  # a 30 kW drop: the margin stops at max_kw
    assert large.largest_drop_kw() == pytest.approx(30.0) and large.margin_kw() == 10.0


def test_a_drop_counts_from_the_top_of_the_last_period_when_readings_come_faster():
    m = ExportMargin(1.0, min_kw=0.0, max_kw=100.0, window_s=10.0, bucket_s=1.0)
    for t, kw in [(0.0, 100.0), (0.25, 101.0), (0.5, 99.0), (0.75, 98.0), (1.0, 98.5)]:
        m.add(t, kw)
    assert m.largest_drop_kw() == pytest.approx(3.0)  # 101 at 0.25 s to 98 at 0.75 s: within one period
    m.add(1.5, 99.0)
    m.add(2.6, 97.0)  # 99 at 1.5 s is the top of [1.6, 2.6] and the reading before it: a drop of 2
    assert m.largest_drop_kw() == pytest.approx(3.0)


def test_a_gap_in_the_readings_is_not_a_drop():
    m = ExportMargin(60.0, min_kw=1.0, max_kw=10.0, window_s=3600.0, bucket_s=600.0)
    feed(m, [100.0, 99.0])
    m.add(60.0 + 600.0, 40.0)  # ten minutes without a reading: the 59 kW between is not one period's drop
    feed(m, [40.0, 39.5], t0=720.0)
    assert m.largest_drop_kw() == pytest.approx(1.0)


def test_drops_older_than_the_window_leave_it():
    m = ExportMargin(60.0, min_kw=0.5, max_kw=10.0, window_s=3600.0, bucket_s=600.0)
    end = feed(m, [30.0, 22.0] + [22.0] * 60)  # an 8 kW drop at 60 s
    assert m.margin_kw() == pytest.approx(8.0)
    feed(m, [22.0, 21.0] * 30, t0=end + 60.0)  # another hour with 1 kW drops
    assert m.margin_kw() == pytest.approx(1.0)


def test_a_clock_that_goes_back_starts_the_watch_again():
    m = ExportMargin(60.0, min_kw=1.0, max_kw=10.0, window_s=600.0, bucket_s=60.0)
    feed(m, [30.0, 29.0] * 6)
    assert m.margin_kw() == pytest.approx(1.0)
    m.add(0.0, 30.0)
    assert m.largest_drop_kw() is None and m.margin_kw() == 10.0


@pytest.mark.parametrize(("args", "message"), [
    ((0.0, 1.0, 10.0), "period_s, window_s and bucket_s must be positive"),
    ((60.0, 11.0, 10.0), "min_kw=11.0, max_kw=10.0"),
    ((60.0, -1.0, 10.0), "min_kw=-1.0"),
])
def test_bad_settings_are_refused_by_name(args, message):
    with pytest.raises(ValueError, match=message):
        ExportMargin(*args)


@PROPERTY
@given(st.lists(st.floats(0.0, 2000.0), min_size=2, max_size=200), st.floats(0.0, 20.0), st.floats(0.0, 50.0))
def test_after_the_window_the_margin_covers_every_recent_drop_up_to_its_ceiling(loads, min_kw, extra_kw):
    max_kw = min_kw + extra_kw
    period, bucket = 60.0, 300.0
    window = 60.0 * (len(loads) // 2)
    m = ExportMargin(period, min_kw=min_kw, max_kw=max_kw, window_s=max(window, 60.0), bucket_s=bucket)
    end = feed(m, loads, period)
    margin = m.margin_kw()
    assert min_kw <= margin <= max_kw
    if end < m.window_s:
        assert margin == max_kw
        return
    # every drop inside the last (window - bucket) seconds is held: the window is kept in whole buckets
    recent = [loads[i - 1] - loads[i] for i in range(1, len(loads)) if i * period > end - (m.window_s - bucket)]
    for drop in recent:
        assert margin >= min(max_kw, drop) - 1e-9
    # and nothing older than a window and a bucket holds it up
    held = [loads[i - 1] - loads[i] for i in range(1, len(loads)) if i * period > end - (m.window_s + bucket)]
    assert margin <= max(min_kw, min(max_kw, max(held))) + 1e-9


# --------------------------------------------------------------------------------------------
# the Dispatcher keeps the margin the site's load calls for
# --------------------------------------------------------------------------------------------
def run_steps(site: Site, loads: list[float], t0_s: float, step_s: float = 60.0) -> float:
    """A POI reading (the BESS idle) stamped at each control tick, then the tick."""
    t = t0_s
    for kw in loads:
        site.until(t - 1.0)
        site.meter(kw, sampled_s=t - 1.0)
        site.until(t)
        t += step_s
    return t


def test_the_dispatcher_discharge_cap_follows_the_site_load_after_a_day():
    site = Site(mode="export_limit", control_rate_hz=1 / 60, export_margin_min_kw=1.0)
    site.pcs(0.0, sampled_s=0.0)
    t = run_steps(site, [40.0, 38.0] * 10, 60.0)  # drops of 2 kW, for 20 minutes
    assert site.requests[-1][1].p_kw == pytest.approx(38.0 - 10.0)  # not a day yet: the full 10 kW
    t = run_steps(site, [40.0, 38.0] * 720, t)  # a whole day watched
    last = site.requests[-1][1]
    assert last.mode == DispatchRequest.MODE_EXPORT_LIMIT
    assert last.p_kw == pytest.approx(38.0 - 2.0)  # the largest drop of the day, 2 kW, is the margin
    assert site.dispatcher.margin.margin_kw() == pytest.approx(2.0)


def test_a_least_margin_above_the_most_is_refused_by_name():
    from energizeos.runtime import ParameterError

    with pytest.raises(ParameterError, match=r"export_margin_min_kw \(5\) is above export_margin_kw \(3\)"):
        Site(mode="export_limit", control_rate_hz=1 / 60, export_margin_kw=3.0)  # the least is 5 kW by default


def test_the_default_margin_never_goes_under_five_kw():
    site = Site(mode="export_limit", control_rate_hz=1 / 60)
    site.pcs(0.0, sampled_s=0.0)
    run_steps(site, [40.0, 39.0] * 730, 60.0)
    assert site.requests[-1][1].p_kw == pytest.approx(39.0 - 5.0)


def test_a_meter_that_stops_reporting_does_not_shrink_the_margin():
    site = Site(mode="export_limit", control_rate_hz=1 / 60, export_margin_min_kw=1.0)
    site.pcs(0.0, sampled_s=0.0)
    run_steps(site, [40.0, 39.0], 60.0)  # one 1 kW drop, then the meter goes silent for a day
    site.until(60.0 * 1500)
    assert len(site.requests) > 1400  # the dispatcher kept ticking on the last reading
    assert site.dispatcher.margin.largest_drop_kw() == pytest.approx(1.0)
    assert site.dispatcher.margin.margin_kw() == 10.0  # a repeated stale reading is no evidence of calm
