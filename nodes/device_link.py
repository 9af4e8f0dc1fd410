"""How a device node reaches its device's registers: Modbus TCP, or in memory for simulation.

Both links expose the same two calls, so a device node's decoding is identical whether it polls
a real device, the simulated plant over loopback, or the plant's registers directly in the
deterministic executor. Every I/O wait is bounded by the link timeout.
"""

from __future__ import annotations

import logging
from typing import Protocol

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from energizeos.sim.registers import RegisterError, RegisterImage

# pymodbus logs a traceback-like frame dump on every timeout; our nodes log one clear line.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


class LinkError(RuntimeError):
    """No answer, a refused connection, or a Modbus exception response."""

    def __init__(self, message: str, exception_code: int | None = None) -> None:
        super().__init__(message)
        self.exception_code = exception_code


class RegisterLink(Protocol):
    def read(self, address: int, count: int) -> list[int]: ...
    def write(self, address: int, words: list[int]) -> None: ...
    def close(self) -> None: ...


class ModbusTcpLink:
    """pymodbus client with a short timeout and no hidden retries (the node owns the back-off)."""

    def __init__(self, host: str, port: int, device_id: int = 1, timeout_s: float = 0.25) -> None:
        self.host, self.port, self.device_id = host, port, device_id
        self._client = ModbusTcpClient(host, port=port, timeout=timeout_s, retries=0)

    def _ensure_connected(self) -> None:
        if not self._client.connected and not self._client.connect():
            raise LinkError(f"cannot connect to {self.host}:{self.port}")

    def read(self, address: int, count: int) -> list[int]:
        self._ensure_connected()
        try:
            response = self._client.read_holding_registers(address, count=count, device_id=self.device_id)
        except ModbusException as exc:
            self._client.close()  # start clean next time: a late reply must not be taken for the next one
            raise LinkError(f"no answer from {self.host}:{self.port} reading {address}+{count}: {exc}") from exc
        if response.isError():
            code = getattr(response, "exception_code", None)
            raise LinkError(f"exception {code} reading {address}+{count} from {self.host}:{self.port}", code)
        return list(response.registers)

    def write(self, address: int, words: list[int]) -> None:
        self._ensure_connected()
        try:
            response = self._client.write_registers(address, words, device_id=self.device_id)
        except ModbusException as exc:
            self._client.close()
            raise LinkError(f"no answer from {self.host}:{self.port} writing {address}: {exc}") from exc
        if response.isError():
            code = getattr(response, "exception_code", None)
            raise LinkError(f"exception {code} writing {address} ({len(words)} registers)", code)

    def close(self) -> None:
        self._client.close()


class InMemoryLink:
    """The simulated device's registers without sockets (deterministic executor)."""

    def __init__(self, image: RegisterImage) -> None:
        self.image = image

    def read(self, address: int, count: int) -> list[int]:
        if self.image.offline:
            raise LinkError(f"no answer from {self.image.name} (comms loss)")
        try:
            return self.image.read(address, count)
        except RegisterError as exc:
            raise LinkError(str(exc), exc.exception_code) from exc

    def write(self, address: int, words: list[int]) -> None:
        if self.image.offline:
            raise LinkError(f"no answer from {self.image.name} (comms loss)")
        try:
            self.image.write(address, words)
        except RegisterError as exc:
            raise LinkError(str(exc), exc.exception_code) from exc

    def close(self) -> None:
        pass
