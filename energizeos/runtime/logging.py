"""Node loggers in the ROS 2 console format: ``[LEVEL] [stamp] [node]: message``.

The stamp comes from the node clock, so simulated runs log simulated time.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from energizeos.runtime.clock import Clock

_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING,
           "WARNING": logging.WARNING, "ERROR": logging.ERROR, "FATAL": logging.CRITICAL}


class NodeLogger:
    def __init__(self, node_fq_name: str, clock: Clock, level: str | None = None) -> None:
        self.name = node_fq_name.lstrip("/").replace("/", ".")
        self._logger = logging.getLogger(f"energizeos.node.{self.name}")
        self._clock = clock
        self._last_throttled: dict[str, int] = {}
        self._once: set[str] = set()
        if level:
            self.set_level(level)

    def set_level(self, level: str) -> None:
        if level.upper() not in _LEVELS:
            raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}")
        self._logger.setLevel(_LEVELS[level.upper()])

    def _log(self, level: int, msg: str, throttle_duration_sec: float | None, once: bool) -> bool:
        if once:
            if msg in self._once:
                return False
            self._once.add(msg)
        if throttle_duration_sec:
            now = self._clock.now().nanoseconds
            last = self._last_throttled.get(msg)
            if last is not None and now - last < throttle_duration_sec * 1e9:
                return False
            self._last_throttled[msg] = now
        if self._logger.isEnabledFor(level):
            stamp = self._clock.now().nanoseconds / 1e9
            self._logger.log(level, msg, extra={"ros_stamp": stamp, "ros_node": self.name})
        return True

    def debug(self, msg: str, *, throttle_duration_sec: float | None = None, once: bool = False) -> bool:
        return self._log(logging.DEBUG, msg, throttle_duration_sec, once)

    def info(self, msg: str, *, throttle_duration_sec: float | None = None, once: bool = False) -> bool:
        return self._log(logging.INFO, msg, throttle_duration_sec, once)

    def warning(self, msg: str, *, throttle_duration_sec: float | None = None, once: bool = False) -> bool:
        return self._log(logging.WARNING, msg, throttle_duration_sec, once)

    warn = warning

    def error(self, msg: str, *, throttle_duration_sec: float | None = None, once: bool = False) -> bool:
        return self._log(logging.ERROR, msg, throttle_duration_sec, once)

    def fatal(self, msg: str, *, throttle_duration_sec: float | None = None, once: bool = False) -> bool:
        return self._log(logging.CRITICAL, msg, throttle_duration_sec, once)


class RosFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = {"WARNING": "WARN", "CRITICAL": "FATAL"}.get(record.levelname, record.levelname)
        stamp = getattr(record, "ros_stamp", record.created)
        node = getattr(record, "ros_node", record.name)
        text = f"[{level}] [{stamp:.6f}] [{node}]: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_process_logging(level: str | None = None) -> None:
    """One stderr handler in ROS format for a node process (launch prefixes the node name)."""
    root = logging.getLogger("energizeos")
    if not any(isinstance(h.formatter, RosFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(RosFormatter())
        root.addHandler(handler)
    root.setLevel(_LEVELS.get((level or "INFO").upper(), logging.INFO))


@contextmanager
def node_logs_from(level: int) -> Iterator[None]:
    """Node logs below ``level`` are dropped while the block runs, and the level before comes back after it:
    a simulation's expected faults stay quiet without silencing the rest of the process (a test, an app)."""
    logger = logging.getLogger("energizeos")
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)
