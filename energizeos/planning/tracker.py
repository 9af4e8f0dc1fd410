"""What the planner measures as it goes: 15-minute means of site load and POI import (from the POI
meter and the PCS), the month's peaks so far, and the last hour's load. Pure; fed with readings and
their times."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from energizeos.planning.history import LoadHistory

INTERVAL_S = 900
NS = 1_000_000_000


@dataclass
class _Bin:
    load_sum: float = 0.0
    poi_sum: float = 0.0
    count: int = 0
    poi_count: int = 0  # 0 for seeded load-only history: it says nothing about this month's billed peaks


class LoadTracker:
    def __init__(self, keep_days: int = 56) -> None:
        self.keep = keep_days * 86400 // INTERVAL_S
        self.bins: dict[int, _Bin] = {}  # interval index (epoch seconds // 900) -> sums
        self.pcs_kw: float | None = None

    def on_pcs(self, p_kw: float, good: bool) -> None:
        self.pcs_kw = p_kw if good and math.isfinite(p_kw) else None

    def on_poi(self, t_ns: int, poi_kw: float, good: bool) -> None:
        """A POI reading; with the latest PCS power it gives the site load (load = POI + BESS)."""
        if not good or not math.isfinite(poi_kw) or self.pcs_kw is None:
            return  # a gap stays a gap
        # a reading reports what has just been: one taken on a boundary closes the interval before it
        # (as the plant, the revenue meter's demand register and the dispatcher's DemandInterval count it)
        k = (t_ns - 1) // NS // INTERVAL_S
        b = self.bins.setdefault(k, _Bin())
        b.load_sum += poi_kw + self.pcs_kw
        b.poi_sum += poi_kw
        b.count += 1
        b.poi_count += 1
        if len(self.bins) > self.keep + 8:
            for old in sorted(self.bins)[: len(self.bins) - self.keep]:
                del self.bins[old]

    def seed(self, series: LoadHistory, poi: LoadHistory | None = None) -> None:
        """History from elsewhere (the records, utility interval data) before live readings arrive. ``poi``
        (same grid) also restores the month's peaks so far; without it the seeded intervals count for the
        forecast only."""
        k0 = int(series.start.timestamp()) // INTERVAL_S
        for i, v in enumerate(series.values):
            if math.isfinite(v):
                has_poi = poi is not None and math.isfinite(poi.values[i])
                self.bins.setdefault(k0 + i, _Bin(float(v), float(poi.values[i]) if has_poi else 0.0, 1,
                                                  1 if has_poi else 0))

    def history(self, end: datetime, days: int) -> LoadHistory:
        """Site-load 15-minute means over the ``days`` before ``end`` (NaN where nothing was measured)."""
        k_end = int(end.timestamp()) // INTERVAL_S
        ks = range(k_end - days * 86400 // INTERVAL_S, k_end)
        values = np.array([self.bins[k].load_sum / self.bins[k].count if k in self.bins else np.nan for k in ks])
        return LoadHistory(datetime.fromtimestamp(ks.start * INTERVAL_S, UTC), INTERVAL_S, values)

    def poi_means(self, start: datetime, end: datetime) -> dict[int, float]:
        """POI import 15-minute means of complete intervals in [start, end), by interval index."""
        k0, k1 = int(start.timestamp()) // INTERVAL_S, int(end.timestamp()) // INTERVAL_S
        if k1 - k0 <= len(self.bins):  # a short window (the usual case): look its intervals up
            pairs = ((k, self.bins.get(k)) for k in range(k0, k1))
        else:  # a long one: scan what there is
            pairs = ((k, b) for k, b in self.bins.items() if k0 <= k < k1)
        return {k: b.poi_sum / b.poi_count for k, b in pairs if b is not None and b.poi_count}

    def recent_loads(self, now: datetime, count: int = 4) -> np.ndarray:
        """Mean site load of the ``count`` complete intervals before ``now`` (NaN where not measured)."""
        k = int(now.timestamp()) // INTERVAL_S
        return np.array([self.bins[j].load_sum / self.bins[j].count if j in self.bins else np.nan
                         for j in range(k - count, k)])


def interval_start(k: int) -> datetime:
    return datetime.fromtimestamp(k * INTERVAL_S, UTC)
