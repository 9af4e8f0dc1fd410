"""Modbus TCP servers for the simulated plant: one pymodbus 3.16 server per RegisterImage.

Why this shape: the plant updates its register images from other threads at any moment, and a
real device's firmware can refuse a write. pymodbus 3.16 serves a ``SimDevice`` whose registers
live inside pymodbus; its ``action`` coroutine runs before every access and may rewrite the
register list in place or return an exception code. So the action copies the live words from the
image into pymodbus' list right before each read, and routes each write through
``RegisterImage.write`` (the device hook) before pymodbus stores it. The image stays the single
source of truth; pymodbus' copy is only a staging buffer.

Comms loss (``image.offline``) is emulated by dropping incoming requests in the ``trace_pdu``
hook: nothing is executed and nothing is answered, so the client times out, and no stale answer
is queued for after the fault clears. Requests for another unit id are dropped the same way.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import threading
from types import TracebackType

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from .registers import RegisterError, RegisterImage

__all__ = ["DeviceServer", "PortInUseError", "serve_many"]

log = logging.getLogger(__name__)

READ_FUNCTION_CODES = frozenset({3, 4})
WRITE_FUNCTION_CODES = frozenset({6, 16})
DEFAULT_HOST = "127.0.0.1"
DEFAULT_DEVICE_ID = 1


class PortInUseError(OSError):
    """The TCP port the caller picked is already bound by someone else."""


def _exception_code(code: int) -> ExcCodes:
    """Map a RegisterError code to a Modbus exception code (unknown codes → device failure)."""
    try:
        return ExcCodes(code)
    except ValueError:
        return ExcCodes.DEVICE_FAILURE


class DeviceServer:
    """Serve one RegisterImage over Modbus TCP (device id 1) from a background thread.

    Function codes 3/4 read the live image, 6/16 write through ``image.write`` (so the device's
    ``on_write`` hook can refuse with a Modbus exception); every other function code is refused
    with ILLEGAL_FUNCTION, as a register-only device would.
    """

    def __init__(self, image: RegisterImage, port: int, *, host: str = DEFAULT_HOST,
                 device_id: int = DEFAULT_DEVICE_ID) -> None:
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"{image.name}: port must be 1..65535 picked by the caller, got {port!r}")
        self.image = image
        self.host = host
        self.device_id = device_id
        self._port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    # ------------------------------------------------------------------ public API
    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return self._port

    @property
    def running(self) -> bool:
        """True between a successful ``start()`` and ``stop()``."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 5.0) -> DeviceServer:
        """Start listening; returns once the socket accepts connections, raises if it cannot."""
        if self.running:
            raise RuntimeError(f"{self.image.name}: server already running on port {self._port}")
        self._ready.clear()
        self._start_error = None
        self._thread = threading.Thread(target=self._run, name=f"modbus-{self.image.name}-{self._port}",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise TimeoutError(f"{self.image.name}: Modbus server on port {self._port} did not start "
                               f"within {timeout} s")
        if self._start_error is not None:
            self._thread.join(timeout)
            self._thread = None
            raise self._start_error
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listener and every client connection, then join the thread (idempotent)."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop_event.set)
            except RuntimeError:  # loop closed between the check and the call
                pass
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"{self.image.name}: Modbus server thread did not stop within {timeout} s")
        self._thread = None

    def __enter__(self) -> DeviceServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"DeviceServer({self.image.name!r}, {self.host}:{self._port}, {state})"

    # ------------------------------------------------------------------ thread / loop
    def _run(self) -> None:
        """Thread body: a private event loop that lives as long as the server."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start() instead of dying silently
            if not self._ready.is_set():
                self._start_error = exc
            else:
                log.exception("%s: Modbus server loop failed", self.image.name)
        finally:
            self._cancel_pending(loop)
            loop.close()
            self._ready.set()

    @staticmethod
    def _cancel_pending(loop: asyncio.AbstractEventLoop) -> None:
        """Cancel request tasks still queued so the loop closes without 'pending task' warnings."""
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        device = SimDevice(
            id=self.device_id,
            simdata=SimData(address=self.image.base, count=self.image.size, datatype=DataType.REGISTERS),
            action=self._action,
        )
        server = ModbusTcpServer(device, address=(self.host, self._port), trace_pdu=self._trace_pdu)
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:  # pymodbus only says "Could not start listen"
            await server.shutdown()
            self._start_error = self._listen_error(exc)
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            await server.shutdown()

    def _listen_error(self, exc: RuntimeError) -> OSError:
        """Find out why listen failed (pymodbus logs the OSError and returns False)."""
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((self.host, self._port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return PortInUseError(errno.EADDRINUSE, f"{self.image.name}: port {self.host}:{self._port} "
                                      f"is already in use")
            return OSError(err.errno, f"{self.image.name}: cannot listen on {self.host}:{self._port}: "
                           f"{err.strerror}")
        finally:
            probe.close()
        return OSError(f"{self.image.name}: cannot listen on {self.host}:{self._port}: {exc}")

    # ------------------------------------------------------------------ pymodbus hooks
    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU | None:
        """Drop incoming requests while offline or addressed to another unit id.

        pymodbus skips a request this hook turns into None: nothing is executed, nothing is sent.
        Other unit ids are dropped (as on a serial line) because pymodbus 3.16's SimCore answers
        them with a logged KeyError traceback and a device-failure response.
        """
        if sending:
            return pdu
        if self.image.offline:
            return None
        if pdu.dev_id != self.device_id:
            log.debug("%s: request for unit id %d ignored (this is unit %d)", self.image.name, pdu.dev_id,
                      self.device_id)
            return None
        return pdu

    async def _action(self, function_code: int, start_address: int, address: int, count: int,
                      registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        """Runs before pymodbus touches its register copy: refresh it from, or write to, the image."""
        if function_code not in READ_FUNCTION_CODES | WRITE_FUNCTION_CODES:
            return ExcCodes.ILLEGAL_FUNCTION
        try:
            if set_values is None:  # a read (also the read-back pymodbus does after FC 6)
                offset = address - start_address
                registers[offset:offset + count] = self.image.read(address, count)
            else:
                self.image.write(address, [int(v) for v in set_values])
        except RegisterError as exc:
            log.debug("%s: fc %d @%d x%d refused: %s", self.image.name, function_code, address, count, exc)
            return _exception_code(exc.exception_code)
        except Exception:  # a device fault must answer, not kill the server
            log.exception("%s: fc %d @%d x%d failed in the device logic", self.image.name, function_code,
                          address, count)
            return ExcCodes.DEVICE_FAILURE
        return None


def serve_many(images: dict[str, tuple[RegisterImage, int]]) -> dict[str, DeviceServer]:
    """Start one server per ``name: (image, port)``; on any failure stop those already started."""
    servers: dict[str, DeviceServer] = {}
    try:
        for name, (image, port) in images.items():
            servers[name] = DeviceServer(image, port).start()
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return servers
