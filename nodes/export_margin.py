"""The import margin the dispatcher keeps at the POI against export, sized from the site's own load.

A discharge is set from the site load at one reading and lands a control period later; if the load
drops more than the margin in between, the site exports. A fixed margin is either too small for a
large site (it exports) or too large for a small one: 10 kW is a quarter of a 40 kW warehouse's
evening load, imported through every on-peak hour at the on-peak demand rate. ``ExportMargin`` keeps
the largest drop of the site load over one control period seen in the window (24 h by default),
within [``min_kw``, ``max_kw``]. Until it has watched a whole window (a day holds the shift
changes and the evening fall-off) it keeps ``max_kw``.
Pure and clock-free: times are passed in.
"""

from __future__ import annotations

import math
from collections import deque


class ExportMargin:
    def __init__(self, period_s: float, min_kw: float, max_kw: float, window_s: float = 86400.0,
                 bucket_s: float = 3600.0) -> None:
        if not (period_s > 0 and window_s > 0 and bucket_s > 0):
            raise ValueError(f"period_s, window_s and bucket_s must be positive, not {period_s}, {window_s}, "
                             f"{bucket_s}")
        if not 0.0 <= min_kw <= max_kw:
            raise ValueError(f"need 0 <= min_kw <= max_kw, not min_kw={min_kw}, max_kw={max_kw}")
        self.period_s, self.min_kw, self.max_kw = period_s, min_kw, max_kw
        self.window_s, self.bucket_s = window_s, bucket_s
        self._reset()

    def _reset(self) -> None:
        self._recent: deque[tuple[float, float]] = deque()  # (t, load) of the last period: a drop is from its top
        self._buckets: deque[list[float]] = deque()  # [bucket index, largest drop in it]: the window, in pieces
        self._first_t: float | None = None
        self._last_t: float | None = None

    def add(self, t_s: float, load_kw: float) -> None:
        """A site load (POI + PCS from readings that belong together) at ``t_s``."""
        if not (math.isfinite(t_s) and math.isfinite(load_kw)):
            return
        if self._last_t is not None and t_s < self._last_t:  # time went back (a restarted clock): start again
            self._reset()
        if self._first_t is None:
            self._first_t = t_s
        self._last_t = t_s
        # the readings of the last period, and the one just before it: a drop "over one period" starts there
        while len(self._recent) > 1 and self._recent[1][0] <= t_s - self.period_s:
            self._recent.popleft()
        if self._recent and t_s - self._recent[0][0] <= 2 * self.period_s:  # a gap is not a drop
            drop = max(kw for _, kw in self._recent) - load_kw
            self._record(t_s, drop)
        elif self._recent:
            self._recent.clear()
        self._recent.append((t_s, load_kw))

    def _record(self, t_s: float, drop_kw: float) -> None:
        k = math.floor(t_s / self.bucket_s)
        if self._buckets and self._buckets[-1][0] == k:
            self._buckets[-1][1] = max(self._buckets[-1][1], drop_kw)
        else:
            self._buckets.append([k, drop_kw])
        # a bucket leaves once all of it is older than the window (so the window holds up to one bucket more)
        while self._buckets and (self._buckets[0][0] + 1) * self.bucket_s <= t_s - self.window_s:
            self._buckets.popleft()

    def largest_drop_kw(self) -> float | None:
        """The largest one-period drop in the window so far (None before one has been seen)."""
        return max(b[1] for b in self._buckets) if self._buckets else None

    def margin_kw(self) -> float:
        drop = self.largest_drop_kw()
        if drop is None or self._last_t - self._first_t < self.window_s:
            return self.max_kw
        return min(self.max_kw, max(self.min_kw, drop))
