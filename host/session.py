"""The host's end of one protocol conversation, without I/O: command bytes go in and come out
again as much as the credit rule lets go now; received bytes go in and come out as replies.

Both hosts use it: the `Driver` over a `Link`, and the cocotb testbench word by word on the
RTL's ports. Frame dispatch (CREDIT frames to the credit window, IDENTIFY's configuration), the
reply checks and the GEMM reply loop live here once.
"""

import collections

from systolica.config import Config
from systolica.protocol import Op

from .credit import CreditWindow
from .frames import DeviceError, FrameReader, GemmResult, ProtocolError, identify_command

__all__ = ["Session"]


class Session:
    """Protocol state of one host: what is queued to send, the credit window, the reply parser.

    Usage: `send` queued command bytes, then write out what `take` returns whenever the link can
    take it; `feed` every received byte; pop replies with `reply` (None when none is complete).
    ``config`` is the device's configuration once an IDENTIFY reply has been fed.
    """

    def __init__(self):
        self.reader = FrameReader()
        self.credit = CreditWindow()
        self.config = None
        self.bytes_in = 0
        self._out = bytearray()
        self._replies = collections.deque()

    # --- host → device ---------------------------------------------------------------------

    def send(self, data):
        """Queue command bytes (whole frames, in order)."""
        self._out += data

    def identify(self):
        """Queue IDENTIFY (the credit window counts from it: call it with nothing queued)."""
        if self._out:
            raise ProtocolError(f"IDENTIFY queued behind {len(self._out)} unsent bytes")
        self.credit.before_identify()
        self.send(identify_command())

    @property
    def unsent(self):
        """Queued bytes not yet taken."""
        return len(self._out)

    def take(self, limit=None, *, unit=1):
        """The queued bytes that may go out now: as many as the credit allows, at most ``limit``,
        a multiple of ``unit``; they count as sent."""
        n = min(len(self._out), self.credit.room())
        if limit is not None:
            n = min(n, limit)
        n -= n % unit
        chunk = bytes(self._out[:n])
        del self._out[:n]
        self.credit.on_sent(n)
        return chunk

    # --- device → host ---------------------------------------------------------------------

    def feed(self, data):
        """Received bytes: CREDIT frames go to the credit window, every other frame to the
        replies (an IDENTIFY reply with its configuration parsed, in stream order)."""
        self.bytes_in += len(data)
        self.reader.feed(data)
        for frame in self.reader.frames():
            if frame.op == Op.CREDIT:
                self.credit.on_credit(frame.args[0])
                continue
            if frame.op == Op.IDENTIFY and not frame.status:
                frame.config = Config.from_identify(frame.payload)
                self.credit.on_identify(frame, frame.config)
                self.config = frame.config
                self.reader.config = frame.config
            self._replies.append(frame)

    def missing(self):
        """Bytes still to come before the next frame is complete."""
        return self.reader.missing()

    def reply(self):
        """The next reply (not CREDIT), or None."""
        return self._replies.popleft() if self._replies else None

    # --- checks ----------------------------------------------------------------------------

    @staticmethod
    def check(frame, op, *, shape=None):
        """``frame`` if it is an OK reply to ``op`` (and, for LOAD_A, of ``shape``): an error
        reply raises `DeviceError`, anything else `ProtocolError`."""
        if frame.status:
            raise DeviceError(frame.op, frame.status, frame.args[0])
        if frame.op != op:
            raise ProtocolError(f"expected a {Op(op).name} reply, got {frame}")
        if shape is not None and tuple(frame.args[:2]) != tuple(shape):
            raise ProtocolError(f"{Op(op).name} reply says {frame.args[:2]}, sent {shape}")
        return frame

    def gemm_result(self, n, m):
        """The collector of one GEMM's replies: feed it each reply until its ``add`` is True."""
        return GemmResult(n, m, self.config)
