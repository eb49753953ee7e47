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
from .frame_reader import FrameReader
from .frames import (
    CorruptReply,
    DeviceError,
    GemmResult,
    ProtocolError,
    identify_command,
)

__all__ = ["Session"]


class Session:
    """Protocol state of one host: what is queued to send, the credit window, the reply parser.

    Usage: `send` queued command bytes, then write out what `take` returns whenever the link can
    take it; `feed` every received byte; pop replies with `reply` (None when none is complete).
    ``config`` is the device's configuration once an IDENTIFY reply has been fed.

    Each command gets a tag (`next_tag`) that its replies carry; ``last_tag`` continues the tags
    of an earlier session (so that a late reply to a command of that one is not taken for a
    reply to this one's).
    """

    TAGS = 255       # tags 1..255 in turn; 0 is CREDIT's, which answers no command

    def __init__(self, *, last_tag=0):
        self.reader = FrameReader()
        self.credit = CreditWindow()
        self.config = None
        self.bytes_in = 0
        self.last_tag = last_tag % self.TAGS
        self._out = bytearray()
        self._replies = collections.deque()

    @classmethod
    def is_earlier(cls, tag, current):
        """Whether ``tag`` was given out before ``current``, at most half the tags ago: a reply
        carrying it answers an earlier command. A tag not yet given out (or 0) is not: a reply
        with it is a device's error, not a late answer."""
        return tag != 0 and 0 < (current - tag) % cls.TAGS <= cls.TAGS // 2

    def next_tag(self):
        """The tag of the next command: 1, 2, ..., 255, 1, ..."""
        self.last_tag = self.last_tag % self.TAGS + 1
        return self.last_tag

    # --- host → device ---------------------------------------------------------------------

    def send(self, data):
        """Queue command bytes (whole frames, in order)."""
        self._out += data

    def identify(self, tag=None):
        """Queue IDENTIFY (the credit window counts from it: call it with nothing queued) with
        ``tag`` (default: `next_tag`); returns the tag."""
        if self._out:
            raise ProtocolError(f"IDENTIFY queued behind {len(self._out)} unsent bytes")
        if tag is None:
            tag = self.next_tag()
        self.credit.before_identify()
        self.send(identify_command(tag=tag))
        return tag

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
            # (A CREDIT frame has status 0 and tag 0: an error reply to a command whose opcode
            # happens to be CREDIT's is a reply, not a credit.)
            if frame.op == Op.CREDIT and not frame.status and not frame.tag:
                self.credit.on_credit(frame.args[0])
                continue
            # A damaged IDENTIFY payload is not parsed; `check` refuses the reply.
            if frame.op == Op.IDENTIFY and not frame.status and frame.payload_ok:
                frame.config = self._identify_config(frame.payload)
                if frame.config is not None:
                    self.credit.on_identify(frame, frame.config)
                    self.config = frame.config
                    self.reader.config = frame.config
            self._replies.append(frame)

    @staticmethod
    def _identify_config(payload):
        """The `Config` an IDENTIFY reply's payload describes (raises if it describes none)."""
        return Config.from_identify(payload)

    def missing(self):
        """Bytes still to come before the next frame is complete."""
        return self.reader.missing()

    def reply(self):
        """The next reply (not CREDIT), or None."""
        return self._replies.popleft() if self._replies else None

    # --- checks ----------------------------------------------------------------------------

    @staticmethod
    def check(frame, op, *, shape=None, tag=None):
        """``frame`` if it is an OK reply to ``op`` (and, for LOAD_A, of ``shape``; if ``tag``
        is given, to the command sent with that tag): an error reply raises `DeviceError`, a
        reply whose payload CRC failed `CorruptReply`, anything else `ProtocolError`."""
        if tag is not None and frame.tag != tag:
            raise ProtocolError(f"expected the reply to the {_name(op)} sent with tag {tag}, got "
                                f"one with tag {frame.tag}: {frame}")
        if frame.status:
            raise DeviceError(frame.op, frame.status, frame.args[0])
        if frame.op != op:
            raise ProtocolError(f"expected a {_name(op)} reply, got {frame}")
        if not frame.payload_ok:
            raise CorruptReply(f"{_name(op)} reply of tag {frame.tag}: payload CRC wrong")
        if shape is not None and tuple(frame.args[:2]) != tuple(shape):
            raise ProtocolError(f"{_name(op)} reply says {frame.args[:2]}, sent {shape}")
        return frame

    def gemm_result(self, n, m, tag, *, pair_sum=False, argmax=False):
        """The collector of the replies to the GEMM sent with ``tag`` (with ``pair_sum``, a
        GEMM_DRAM of n rows that sets `protocol.PAIR_SUM`: n/2 rows of sums; with ``argmax``,
        one that sets `protocol.ARGMAX`: the largest result's column and binary32 pattern):
        feed it each reply until its ``add`` is True."""
        return GemmResult(n, m, self.config, tag, pair_sum=pair_sum, argmax=argmax)


def _name(op):
    try:
        return Op(op).name
    except ValueError:
        return f"opcode 0x{op:02x}"
