"""The simulated board behind a pseudo-terminal: it looks to the host exactly like a real board's
USB-UART (``/dev/pts/N`` instead of ``/dev/ttyUSB1``), so the serial `Link` can be tested end to end
without hardware. A pty carries bare bytes, so the board runs in its raw mode (its cycle counts
depend on the host's timing, as a real board's would on the link's)."""

import os
import subprocess

from .board import board_executable

__all__ = ["PtyBoard"]


class PtyBoard:
    """Runs the simulated board for ``config`` on the master side of a new pty.

    Use as a context manager; ``port`` is the path a serial link opens.
    """

    def __init__(self, config):
        exe = board_executable(config)
        self._master, slave = os.openpty()
        self.port = os.ttyname(slave)
        self._proc = subprocess.Popen([str(exe), "--raw"], stdin=self._master, stdout=self._master,
                                      stderr=subprocess.PIPE)
        # Keep the slave open until the host has opened it, or the master would see a hangup.
        self._slave = slave
        self.pid = self._proc.pid

    def close(self):
        if self._proc is None:
            return
        os.close(self._slave)
        self._proc.kill()
        self._proc.wait()
        self._proc.stderr.close()
        os.close(self._master)
        self._proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
