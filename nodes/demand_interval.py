"""The demand interval the utility bills: the mean POI import over each 15-minute interval.

Holding the instantaneous POI at a threshold is not enough: the controller acts one reading late,
so every rise of the load above the threshold is imported until the next request lands, and those
overshoots add up in the interval's mean, which sets the month's demand charge. ``DemandInterval``
meters the interval so far and gives the POI level the rest of the interval may import for the mean
to stay at the threshold. Pure and clock-free: times are passed in.
"""

from __future__ import annotations

import math


class DemandInterval:
    def __init__(self, interval_s: float = 900.0) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, not {interval_s}")
        self.interval_s = interval_s
        self._k: int | None = None  # the interval being metered
        self._kws = 0.0  # kW x s imported in it so far
        self._covered_s = 0.0  # seconds of it the readings cover
        self._last_t: float | None = None

    def add(self, t_s: float, poi_kw: float) -> None:
        """A good POI reading at ``t_s``: it stands for the time since the previous reading (the plant
        and a meter's demand register both report what has just been), split at interval boundaries."""
        if not math.isfinite(poi_kw) or not math.isfinite(t_s):
            return
        last, self._last_t = self._last_t, t_s
        if last is None or t_s <= last:
            self._start(t_s)
            return
        span_start = max(last, t_s - self.interval_s)  # a long gap counts for one interval at most
        while True:
            k = math.floor(span_start / self.interval_s)
            if self._k != k:
                self._k, self._kws, self._covered_s = k, 0.0, 0.0
            end = min(t_s, (k + 1) * self.interval_s)
            self._kws += poi_kw * (end - span_start)
            self._covered_s += end - span_start
            if end >= t_s:
                break
            span_start = end

    def _start(self, t_s: float) -> None:
        k = math.floor(t_s / self.interval_s)
        if self._k != k:
            self._k, self._kws, self._covered_s = k, 0.0, 0.0

    def target_kw(self, t_s: float, threshold_kw: float, min_remaining_s: float) -> float:
        """The POI level for the rest of the interval that keeps its mean at ``threshold_kw`` given what
        has been imported so far; never above the threshold (an early undershoot is not spent, the
        next rise may not be caught in time). ``min_remaining_s``: one control period, so the last
        request of an interval is not asked to make up for everything at once."""
        k = math.floor(t_s / self.interval_s)
        if self._k != k or self._covered_s <= 0.0 or not math.isfinite(threshold_kw):
            return threshold_kw
        elapsed = t_s - k * self.interval_s
        so_far = self._kws / self._covered_s * elapsed  # gaps in the readings counted at the mean around them
        remaining = max(self.interval_s - elapsed, min_remaining_s)
        return min(threshold_kw, (threshold_kw * self.interval_s - so_far) / remaining)
