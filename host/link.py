"""The host's one link interface, with two implementations: the simulated board (a Verilator
process on pipes) and a serial port (pyserial, for a real board's UART).

The driver only ever sees `Link`: the same code runs against simulation and hardware.
"""

import abc
import os
import select
import struct
import subprocess
import time

__all__ = ["Link", "LinkClosed", "LinkError", "LinkTimeout", "LinkWrapper", "SerialLink",
           "SimulatedBoardLink"]


class LinkError(RuntimeError):
    """The link failed."""


class LinkTimeout(LinkError, TimeoutError):
    """The device did not answer in time."""


class LinkClosed(LinkError):
    """The device end went away (process died, port closed)."""


class Link(abc.ABC):
    """A byte pipe to a device.

    ``read_some(timeout, want)`` returns at least one byte, or raises `LinkTimeout` after
    ``timeout`` seconds with nothing, or `LinkClosed` if the device end is gone. ``want`` says how
    many bytes the caller needs before it can go on (a hint: a simulated board runs its clock for
    exactly that long while the host waits; a serial port ignores it).
    """

    name = "link"

    @abc.abstractmethod
    def write(self, data): ...

    @abc.abstractmethod
    def read_some(self, timeout, want=1): ...

    def poll(self):
        """Bytes available right now, possibly none."""
        try:
            return self.read_some(0)
        except LinkTimeout:
            return b""

    def read(self, n, timeout):
        """Exactly ``n`` bytes, waiting at most ``timeout`` seconds in all."""
        deadline = time.monotonic() + timeout
        out = bytearray()
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkTimeout(f"{self.name}: got {len(out)} of {n} bytes in {timeout} s")
            out += self.read_some(left, n - len(out))
        return bytes(out)

    @abc.abstractmethod
    def close(self): ...

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LinkWrapper(Link):
    """A `Link` in front of another (``link``): what it does not do itself (``close``, and any
    attribute it lacks: ``stats``, ``pid``, ``kill``, ...) is the wrapped link's."""

    def __init__(self, link, name=None):
        self.link = link
        self.name = name or link.name

    def close(self):
        self.link.close()

    def __getattr__(self, name):
        # Only reached for attributes the wrapper itself lacks.
        if name == "link":
            raise AttributeError(name)
        return getattr(self.link, name)


class SimulatedBoardLink(Link):
    """The simulated board: spawns the Verilator-built program for ``config`` and owns it.

    It speaks the board program's paced mode (see `sim/board_harness.cpp`): link bytes go out as
    data messages, and a read that has to wait first tells the board how many output bytes the host
    has seen and how many it wants, so the board's clock runs only while the device has input or
    the host is waiting for it, and the cycles it counts do not depend on the host's speed.

    The process is killed on `close` (also on garbage collection and interpreter exit); if it dies
    on its own, the next read raises `LinkClosed` with its exit status and last stderr lines.

    Parameters
    ----------
    config : Config
        Configuration to simulate (any: the default, or a board's).
    executable : path, optional
        A prebuilt board program (default: build or reuse the cached one for ``config``).
    """

    write_timeout = 10.0    # seconds the board may take no input before a write gives up

    def __init__(self, config, *, executable=None, log=None):
        if executable is None:
            from systolica.sim.board import board_executable
            executable = board_executable(config, **({} if log is None else {"log": log}))
        self.config = config
        self.name = f"simulated board {config.label()}"
        self.stats = None
        self._stderr = bytearray()
        self._seen = 0          # output bytes read so far
        self._proc = subprocess.Popen([str(executable)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        self.pid = self._proc.pid
        self._out = self._proc.stdout.fileno()
        os.set_blocking(self._out, False)
        self._in = self._proc.stdin.fileno()
        os.set_blocking(self._in, False)
        self._broken = False

    def _send(self, message):
        """Write ``message`` to the board's input, waiting at most ``write_timeout`` seconds
        for it to take each part (a board that stops reading must not hang the host)."""
        if self._broken:
            raise LinkClosed(f"{self.name}: broken by an earlier write that did not finish")
        if self._proc.poll() is not None:
            raise self._closed_error()
        view = memoryview(message)
        deadline = time.monotonic() + self.write_timeout
        while view:
            try:
                view = view[os.write(self._in, view):]
                continue
            except BlockingIOError:
                pass
            except (BrokenPipeError, OSError):
                raise self._closed_error() from None
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [self._in], [], left)[1]:
                if len(view) == len(message):
                    raise LinkTimeout(f"{self.name}: took no input for {self.write_timeout:g} s")
                # Half a message is in: the board would misread everything after it.
                self._broken = True
                raise LinkClosed(f"{self.name}: stopped taking input for "
                                 f"{self.write_timeout:g} s in the middle of a message")

    def write(self, data):
        if len(data):
            self._send(b"D" + struct.pack("<I", len(data)) + bytes(data))

    def poll(self):
        return self._read(0)

    def read_some(self, timeout, want=1):
        ready, _, _ = select.select([self._out], [], [], 0)
        if not ready and timeout > 0:
            self._send(b"W" + struct.pack("<QI", self._seen, max(int(want), 1)))
        data = self._read(timeout)
        if not data:
            raise LinkTimeout(f"{self.name}: no answer in {timeout:g} s")
        return data

    def _read(self, timeout):
        ready, _, _ = select.select([self._out], [], [], max(timeout, 0))
        if not ready:
            if self._proc.poll() is not None:
                raise self._closed_error()
            return b""
        try:
            data = os.read(self._out, 1 << 20)
        except BlockingIOError:
            return b""
        if not data:
            raise self._closed_error()
        self._seen += len(data)
        return data

    def _closed_error(self):
        try:
            self._proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return LinkClosed(f"{self.name}: the board closed its output")
        err = self._proc.stderr.read().decode(errors="replace").strip().splitlines()
        tail = "; ".join(err[-3:]) or "no message"
        return LinkClosed(f"{self.name} exited with status {self._proc.returncode} ({tail})")

    def close(self):
        """Stop the board; its cycle statistics (stderr) end up in ``stats``."""
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        os.set_blocking(self._out, True)
        try:
            # communicate() closes stdin: on EOF the board finishes what it has and exits.
            _, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        self.stats = (err or b"").decode(errors="replace").strip()

    def kill(self):
        """Kill the board process abruptly (for tests of the host's error handling)."""
        self._proc.kill()

    def __del__(self):
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


class SerialLink(Link):
    """A serial port (a board's USB-UART), through pyserial.

    Parameters
    ----------
    port : str
        Device path, e.g. ``/dev/ttyUSB1``, or any pyserial URL.
    baudrate : int
        Line rate the board's UART runs at.
    """

    def __init__(self, port, baudrate=3_000_000):
        import serial

        self.name = f"serial port {port}"
        try:
            self._port = serial.serial_for_url(port, baudrate=baudrate, timeout=0,
                                               write_timeout=10)
        except (serial.SerialException, ValueError) as exc:
            raise LinkClosed(f"cannot open {self.name}: {exc}") from None
        self.stale_bytes = self._discard_stale()

    def _discard_stale(self):
        """Drop what is waiting from before this link was opened (the end of an earlier
        session's replies, line noise): it would be read as replies to the first commands."""
        import serial
        try:
            stale = len(self._port.read(self._port.in_waiting)) if self._port.in_waiting else 0
            self._port.reset_input_buffer()
        except serial.SerialException as exc:
            self.close()
            raise LinkClosed(f"{self.name}: {exc}") from None
        return stale

    def write(self, data):
        import serial
        try:
            self._port.write(data)
        except serial.SerialTimeoutException:
            raise LinkTimeout(f"{self.name}: write timed out") from None
        except serial.SerialException as exc:
            raise LinkClosed(f"{self.name}: {exc}") from None

    def read_some(self, timeout, want=1):
        import serial
        try:
            self._port.timeout = max(timeout, 0)       # blocks for the first byte at most this
            data = self._port.read(1)
            if data and self._port.in_waiting:
                data += self._port.read(self._port.in_waiting)
        except serial.SerialException as exc:
            raise LinkClosed(f"{self.name}: {exc}") from None
        if not data:
            raise LinkTimeout(f"{self.name}: no answer in {timeout:g} s")
        return data

    def close(self):
        if self._port is not None:
            self._port.close()
            self._port = None
