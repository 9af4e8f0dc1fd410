"""Register images: the holding registers one device exposes, shared by its Modbus TCP server and
by the in-memory transport the deterministic executor uses (same maps, same codecs, no sockets)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable


class RegisterError(ValueError):
    """An access outside the device's map, or a write the device refuses (Modbus exception)."""

    def __init__(self, message: str, exception_code: int = 2) -> None:
        super().__init__(message)
        self.exception_code = exception_code  # 2 illegal data address, 3 illegal data value, 4 device failure


class RegisterImage:
    """``size`` uint16 holding registers starting at ``base``; thread-safe.

    The plant side updates values with ``set_words``; a client write goes through ``write``, which
    runs ``on_write(address, values)`` first so the device logic can reject it (RegisterError) or
    act on it, as a real device's firmware would.
    """

    def __init__(self, base: int, size: int, name: str = "device") -> None:
        self.base = base
        self.size = size
        self.name = name
        self._words = [0] * size
        self._lock = threading.Lock()
        self.on_write: Callable[[int, list[int]], None] | None = None
        # Refresh the words from the device model just before a client reads them (lazy sync:
        # the plant steps cheaply and a device's registers are encoded only when someone looks).
        self.before_read: Callable[[], None] | None = None
        self.offline = False  # fault injection: the device stops answering (comms loss)
        self.frozen = False   # fault injection: values stop updating (stuck)

    def _check(self, address: int, count: int) -> int:
        offset = address - self.base
        if count < 1 or offset < 0 or offset + count > self.size:
            raise RegisterError(f"{self.name}: registers {address}..{address + count - 1} are outside "
                                f"the map {self.base}..{self.base + self.size - 1}")
        return offset

    def read(self, address: int, count: int) -> list[int]:
        offset = self._check(address, count)
        if self.before_read is not None:
            self.before_read()
        with self._lock:
            return self._words[offset:offset + count]

    def peek(self, address: int, count: int) -> list[int]:
        """The words as they are now, without refreshing them (for the device model's own use)."""
        offset = self._check(address, count)
        with self._lock:
            return self._words[offset:offset + count]

    def write(self, address: int, values: list[int]) -> None:
        """A client's write: validated by the device hook, then stored."""
        offset = self._check(address, len(values))
        if any(not 0 <= v <= 0xFFFF for v in values):
            raise RegisterError(f"{self.name}: register values must be 0..65535", 3)
        if self.on_write is not None:
            self.on_write(address, list(values))
        with self._lock:
            self._words[offset:offset + len(values)] = values

    def set_words(self, address: int, values: list[int]) -> None:
        """The device's own update (physics); ignored while the values are frozen by a fault."""
        if self.frozen:
            return
        offset = self._check(address, len(values))
        with self._lock:
            self._words[offset:offset + len(values)] = values

    def set_runs(self, runs: Iterable[tuple[int, list[int]]]) -> None:
        """``set_words(address, values)`` for each run, with one frozen check and one lock (the plant
        stores a SunSpec group's points as a few runs of adjacent registers on every refresh)."""
        if self.frozen:
            return
        with self._lock:
            for address, values in runs:
                offset = self._check(address, len(values))
                self._words[offset:offset + len(values)] = values

    def snapshot(self) -> list[int]:
        if self.before_read is not None:
            self.before_read()
        with self._lock:
            return list(self._words)
