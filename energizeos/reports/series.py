"""A recorded point as a held signal: each good sample holds its value until the next sample, but for no
longer than ``max_hold_s``. Past that, or after a bad sample (invalid, stale, no value), the signal is
a gap. Integrals over any bins are exact for this signal at any sample rate, so energy, averages and
coverage all come from one definition, and a gap is never filled by interpolation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COVERED_TOLERANCE_S = 1e-6


@dataclass(frozen=True)
class Bins:
    """Per-bin integrals of a held signal over ``edges`` (epoch seconds, len(edges) - 1 bins)."""

    edges: np.ndarray
    covered_s: np.ndarray  # seconds of the bin with a value
    net_kws: np.ndarray  # integral of the value, value-seconds
    pos_kws: np.ndarray  # integral of the positive part
    neg_kws: np.ndarray  # integral of the negative part's magnitude

    @property
    def length_s(self) -> np.ndarray:
        return np.diff(self.edges)

    @property
    def complete(self) -> np.ndarray:
        return self.covered_s >= self.length_s - COVERED_TOLERANCE_S

    def mean(self, complete_only: bool = True) -> np.ndarray:
        """The bin average (NaN for a bin with a gap, or with no value at all when not ``complete_only``)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.net_kws / self.covered_s
        mask = self.complete if complete_only else self.covered_s > COVERED_TOLERANCE_S
        return np.where(mask, mean, np.nan)


class Held:
    def __init__(self, t_s: np.ndarray, values: np.ndarray, max_hold_s: float) -> None:
        """``t_s`` sorted epoch seconds; ``values`` with NaN for a bad sample."""
        if max_hold_s <= 0:
            raise ValueError(f"max_hold_s must be > 0, got {max_hold_s}")
        t = np.asarray(t_s, dtype=float)
        v = np.asarray(values, dtype=float)
        if t.shape != v.shape:
            raise ValueError(f"{t.size} times but {v.size} values")
        if t.size > 1 and np.any(np.diff(t) < 0):
            raise ValueError("sample times must be sorted")
        self.t, self.v, self.max_hold_s = t, v, float(max_hold_s)
        following = np.append(t[1:], np.inf)
        good = np.isfinite(v)
        self.start = t[good]
        self.end = np.minimum(following[good], self.start + self.max_hold_s)
        self.value = v[good]
        length = self.end - self.start
        pos, neg = np.maximum(self.value, 0.0), np.maximum(-self.value, 0.0)
        self._rate = {"cover": np.ones_like(length), "net": self.value, "pos": pos, "neg": neg}
        self._cum = {name: np.concatenate(([0.0], np.cumsum(rate * length))) for name, rate in self._rate.items()}

    def __len__(self) -> int:
        return int(self.t.size)

    def cumulative(self, x: np.ndarray, part: str) -> np.ndarray:
        """The integral of ``part`` from the beginning of the data up to each ``x``."""
        x = np.asarray(x, dtype=float)
        k = np.searchsorted(self.start, x, side="right") - 1  # the last segment starting at or before x
        inside = k >= 0
        kk = np.where(inside, k, 0)
        if not self.start.size:
            return np.zeros_like(x)
        within = np.clip(x - self.start[kk], 0.0, self.end[kk] - self.start[kk])
        return np.where(inside, self._cum[part][kk] + self._rate[part][kk] * within, 0.0)

    def bins(self, edges: np.ndarray) -> Bins:
        edges = np.asarray(edges, dtype=float)
        d = {part: np.diff(self.cumulative(edges, part)) for part in ("cover", "net", "pos", "neg")}
        return Bins(edges, d["cover"], d["net"], d["pos"], d["neg"])

    def gaps(self, begin: float, end: float, min_s: float = 0.0) -> list[tuple[float, float]]:
        """The spans of [begin, end) without a value, in time order (segments never overlap)."""
        mask = (self.end > begin) & (self.start < end)
        s, e = np.clip(self.start[mask], begin, end), np.clip(self.end[mask], begin, end)
        lows = np.concatenate(([begin], e))
        highs = np.concatenate((s, [end]))
        keep = highs - lows > max(min_s, COVERED_TOLERANCE_S)
        return [(float(a), float(b)) for a, b in zip(lows[keep], highs[keep], strict=True)]
