"""Site load history from the records database: interval means of POI + BESS power, gaps kept as NaN.

Site load = POI power (import +) + BESS power (discharge +): what the facility drew, whatever the
battery did. The means are grouped in SQL (an integer bucket from epoch seconds, on SQLite and
PostgreSQL alike) so a month of 1-second telemetry never crosses into Python row by row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import Integer, and_, cast, func, select
from sqlalchemy.engine import Engine

from energizeos.records.models import Telemetry

POI_POINT = "/site/poi/meter/p_kw"
BESS_POINT = "/bess/pcs/status/p_kw"
QUALITY_GOOD = 0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class LoadHistory:
    """Equally spaced mean site load (kW) from ``start`` (aware UTC); NaN where there was no good data."""

    start: datetime
    interval_s: int
    values: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ValueError(f"LoadHistory start {self.start.isoformat()} is naive: give an aware UTC datetime")
        if self.interval_s <= 0:
            raise ValueError(f"interval_s must be positive, not {self.interval_s}")
        self.start = self.start.astimezone(UTC)
        self.values = np.asarray(self.values, dtype=float)

    @property
    def end(self) -> datetime:
        """The end of the last interval (exclusive)."""
        return self.start + timedelta(seconds=self.interval_s * len(self.values))

    @property
    def coverage(self) -> float:
        """Share of intervals with a value (0 for an empty history)."""
        n = len(self.values)
        return float(np.count_nonzero(~np.isnan(self.values)) / n) if n else 0.0

    def __repr__(self) -> str:
        return (f"LoadHistory(start={self.start.isoformat()}, interval_s={self.interval_s}, "
                f"n={len(self.values)}, coverage={self.coverage:.3f})")


def _epoch_ms(dialect: str, column):
    """Whole milliseconds since 1970 (floored) of a ``UTCDateTime`` column, on the given backend."""
    if dialect == "sqlite":
        # Stored as UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'. SQLite's date functions round the fraction to
        # the millisecond (59.9999995 would read as the next second), so it is cut to 3 digits first;
        # julianday() is an integer count of ms inside, and twice as cheap as strftime('%s').
        julian = func.julianday(func.substr(column, 1, 23))
        return cast(func.round((julian - 2440587.5) * 86400000.0), Integer)
    # PostgreSQL timestamptz: date_part() is double precision, twice as fast as EXTRACT's numeric, and
    # exact enough (a 2025 epoch in seconds has 0.24 us resolution; the stored times have 1 us)
    return func.floor(func.date_part("epoch", column) * 1000)


def point_means(engine: Engine, point: str, start: datetime, end: datetime, interval_s: int) -> np.ndarray:
    """Mean of the good samples of one point per interval from ``start``; NaN where there is none."""
    n = _n_intervals(start, end, interval_s)
    t = Telemetry.__table__
    start_ms = int((start - _EPOCH).total_seconds()) * 1000
    # integer division on SQLite, FLOOR(a / b) on PostgreSQL: the operand is never negative (time >= start)
    bucket = ((_epoch_ms(engine.dialect.name, t.c.time) - start_ms) // (interval_s * 1000)).label("bucket")
    rows_in_range = (
        select(bucket, t.c.value)
        .where(and_(t.c.point == point, t.c.time >= start, t.c.time < start + timedelta(seconds=n * interval_s),
                    t.c.quality == QUALITY_GOOD, t.c.value.is_not(None)))
        .subquery()
    )  # grouping the subquery's column, not the expression: PostgreSQL sees one GROUP BY term, not new binds
    query = select(rows_in_range.c.bucket, func.avg(rows_in_range.c.value)).group_by(rows_in_range.c.bucket)
    out = np.full(n, np.nan)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    if rows:
        index = np.fromiter((int(r[0]) for r in rows), dtype=np.int64, count=len(rows))
        mean = np.fromiter((float(r[1]) for r in rows), dtype=float, count=len(rows))
        keep = (index >= 0) & (index < n)
        out[index[keep]] = mean[keep]
    return out


def site_load_history(engine: Engine, start: datetime, end: datetime, interval_s: int = 900) -> LoadHistory:
    """Interval-mean site load (POI + BESS) from ``start`` to ``end`` (aware, UTC or any zone).

    An interval is NaN unless both points have at least one good (quality 0) sample in it: a missing
    BESS reading would otherwise pass for a battery at rest and the load would be wrong by its power."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("site_load_history needs aware start and end datetimes")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if start.microsecond:
        raise ValueError(f"start {start.isoformat()} must be on a whole second")
    poi = point_means(engine, POI_POINT, start, end, interval_s)
    bess = point_means(engine, BESS_POINT, start, end, interval_s)
    return LoadHistory(start=start, interval_s=interval_s, values=poi + bess)  # NaN + x = NaN: gaps stay


def _n_intervals(start: datetime, end: datetime, interval_s: int) -> int:
    if interval_s <= 0:
        raise ValueError(f"interval_s must be positive, not {interval_s}")
    seconds = (end - start).total_seconds()
    if seconds < 0:
        raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
    return int(seconds // interval_s)
