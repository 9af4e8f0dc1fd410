"""The planner's own metering: 15-minute means of site load and POI import, as the utility bills them."""

from datetime import UTC, datetime

import pytest

from energizeos.planning.tracker import INTERVAL_S, LoadTracker

NS = 1_000_000_000
T0 = int(datetime(2025, 7, 14, 12, tzinfo=UTC).timestamp())  # an interval boundary


def test_a_reading_on_a_boundary_closes_the_interval_before_it():
    # readings every 60 s report the minute just ended: 12:01 .. 12:15 are the interval 12:00-12:15
    tracker = LoadTracker()
    tracker.on_pcs(100.0, True)
    for minute in range(1, 16):
        tracker.on_poi((T0 + 60 * minute) * NS, 1000.0 if minute < 15 else 1300.0, True)
    tracker.on_poi((T0 + 60 * 16) * NS, 0.0, True)  # the next interval's first minute
    means = tracker.poi_means(datetime.fromtimestamp(T0, UTC), datetime.fromtimestamp(T0 + 2 * INTERVAL_S, UTC))
    k = T0 // INTERVAL_S
    assert means[k] == pytest.approx((14 * 1000.0 + 1300.0) / 15)  # the 12:15 reading counted at 12:00-12:15
    assert means[k + 1] == 0.0
    assert tracker.recent_loads(datetime.fromtimestamp(T0 + INTERVAL_S, UTC), 1)[0] == pytest.approx(
        (14 * 1100.0 + 1400.0) / 15)
