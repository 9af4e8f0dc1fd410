"""Time, Duration and clocks, shaped like rclpy.time / rclpy.clock.

Node code reads time only from its node clock, so the same code runs on the wall clock
(multi-process executor) and on a simulated clock (deterministic executor).
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from energizeos_msgs.msg import Time as TimeMsg

NS_PER_S = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, order=True)
class Duration:
    nanoseconds: int = 0

    @classmethod
    def from_seconds(cls, seconds: float) -> Duration:
        return cls(round(seconds * NS_PER_S))

    def to_seconds(self) -> float:
        return self.nanoseconds / NS_PER_S


@dataclass(frozen=True, order=True)
class Time:
    """A point in time as integer nanoseconds since the Unix epoch (UTC)."""

    nanoseconds: int = 0

    @classmethod
    def from_msg(cls, msg: TimeMsg) -> Time:
        return cls(msg.sec * NS_PER_S + msg.nanosec)

    @classmethod
    def from_datetime(cls, when: datetime) -> Time:
        if when.tzinfo is None:
            raise ValueError("naive datetime: give a time zone (UTC is stored)")
        return cls((when - _EPOCH) // timedelta(microseconds=1) * 1000)  # exact: no float on the way

    def to_msg(self) -> TimeMsg:
        sec, nanosec = divmod(self.nanoseconds, NS_PER_S)
        return TimeMsg(sec=sec, nanosec=nanosec)

    def to_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.nanoseconds / NS_PER_S, tz=UTC)

    def seconds(self) -> float:
        return self.nanoseconds / NS_PER_S

    def __add__(self, other: Duration) -> Time:
        return Time(self.nanoseconds + other.nanoseconds)

    def __sub__(self, other: Time | Duration) -> Duration | Time:  # type: ignore[override]
        if isinstance(other, Time):
            return Duration(self.nanoseconds - other.nanoseconds)
        return Time(self.nanoseconds - other.nanoseconds)


class Clock:
    """Base clock: now() returns Time."""

    def now(self) -> Time:
        raise NotImplementedError


class SystemClock(Clock):
    """Wall-clock time (ROS_TIME without /clock): what the multi-process executor uses."""

    def now(self) -> Time:
        return Time(_time.time_ns())


class SimClock(Clock):
    """Simulated time, advanced only by the deterministic executor."""

    def __init__(self, start: Time | int = 0) -> None:
        self._ns = start.nanoseconds if isinstance(start, Time) else int(start)

    def now(self) -> Time:
        return Time(self._ns)

    @property
    def nanoseconds(self) -> int:
        return self._ns

    def set(self, nanoseconds: int) -> None:
        if nanoseconds < self._ns:
            raise ValueError("simulated time cannot go backwards")
        self._ns = nanoseconds
