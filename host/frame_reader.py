"""The host's reader of the device's reply stream (`systolica.protocol`): bytes in, checked
frames out, past garbage and damaged headers."""

import collections

from systolica import protocol
from systolica.config import IDENTIFY_BYTES
from systolica.protocol import (
    HEADER_BYTES,
    MAX_LINK_BYTES,
    REPLY,
    Op,
    Status,
    crc_word_bytes,
    padded,
)

from .frames import Frame, ProtocolError

__all__ = ["FrameReader"]

# The statuses of the reply to a command whose opcode the device does not know.
UNKNOWN_OP_STATUSES = (Status.BAD_OPCODE, Status.BAD_CHECK)


class FrameReader:
    """Incremental parser of the device's reply stream.

    ``link_bytes`` may be None until IDENTIFY's reply has told it (that reply carries it).
    Feed bytes with `feed`; take complete frames with `frames`.

    A header that is not a valid reply (bad magic or CRC, no reply bit, an unknown opcode or
    status, a RESULT larger than the device's array, an IDENTIFY of the wrong size, a
    ``length`` other than the one its op implies) is not believed: the reader drops bytes up to
    the next magic byte after its first one (so a real header inside the failed candidate is
    found) and goes on from there. ``discarded`` counts the bytes dropped so, ``problems`` keeps
    the last few reasons. Every length the reader waits for is bounded by ``config`` (the
    device's `Config`, once known; before that by the largest array a `Config` allows).

    A valid header's frame is complete once its payload and the payload's CRC word have come.
    A payload whose CRC word does not check is still delivered, with ``payload_ok`` False (its
    length came in a header whose own CRC held, so the stream is still in step), and counted
    in ``bad_payloads``.
    """

    MAX_SIDE = 64                # Config's largest rows / cols
    PROBLEMS_KEPT = 8

    def __init__(self, link_bytes=None, config=None):
        self.link_bytes = link_bytes
        self.config = config
        self.discarded = 0
        self.bad_payloads = 0
        self.problems = collections.deque(maxlen=self.PROBLEMS_KEPT)
        self._buf = bytearray()
        self._frames = []

    def feed(self, data):
        self._buf += data
        while self._parse_one():
            pass

    def frames(self):
        out, self._frames = self._frames, []
        return out

    @property
    def buffered(self):
        """Bytes received and not yet part of a complete frame."""
        return len(self._buf)

    def missing(self):
        """Bytes still to come before the next frame is complete (at least 1)."""
        buf = self._buf
        if len(buf) < HEADER_BYTES:
            return HEADER_BYTES - len(buf)
        # `feed` parsed every complete frame, so the buffer starts with a valid header.
        _, size, _ = self._layout(protocol.unpack_header(bytes(buf[:HEADER_BYTES])))
        return max(HEADER_BYTES + size - len(buf), 1)

    def _problem(self, raw):
        """Why the 32 bytes ``raw`` are not a reply header this device could send, or None."""
        try:
            header = protocol.unpack_header(raw)
        except ValueError as exc:
            return str(exc)
        op, status, args = header.op, header.status, header.args
        if not op & REPLY:
            return f"a frame without the reply bit: op 0x{op:02x}"
        op &= ~REPLY
        # An unknown opcode comes back only in an error reply to it: BAD_OPCODE, or BAD_CHECK
        # when the header's must-be-zero fields were not zero (the device checks those first).
        if status not in set(Status) or (op not in set(Op) and status not in UNKNOWN_OP_STATUSES):
            return f"unknown opcode 0x{op:02x} or status {status}"
        lb = self.link_bytes
        if op == Op.RESULT and not status:
            rows, cols = args[2] & 0xFFFF, args[2] >> 16
            max_rows = self.config.rows if self.config else self.MAX_SIDE
            max_cols = self.config.cols if self.config else self.MAX_SIDE
            if self.config and self.config.dram_mib and args[:2] == (0, 0):
                max_cols = 0xFFFF       # a GEMM_DRAM's whole frame: every column tile
            if not (1 <= rows <= max_rows and 1 <= cols <= max_cols):
                return f"a RESULT of {rows}x{cols}, larger than the device's array"
        if header.info and (op != Op.IDENTIFY or status
                            or header.info >> 2 * protocol.LINE_COUNT_BITS):
            return f"a {_op_name(op)} reply with info 0x{header.info:08x}"
        if op == Op.IDENTIFY and not status:
            lb = args[1]
            if args[0] != IDENTIFY_BYTES or lb < 1 or lb > MAX_LINK_BYTES or lb & (lb - 1) or (
                    self.link_bytes is not None and lb != self.link_bytes):
                return f"an IDENTIFY reply of {args[0]} bytes on a {lb}-byte link"
        want = self._length(op, status, args, lb, self.config.cols if self.config else None)
        if want is not None and header.length != want:
            return (f"a {_op_name(op)} reply with length {header.length} (its payload takes "
                    f"{want})")
        return None

    @staticmethod
    def _length(op, status, args, lb, array_cols):
        """The ``length`` a reply header must have, from its op and the device's ``array_cols``
        (None: a RESULT before the link width is known, which `_layout` refuses)."""
        if status:
            return 0
        if op == Op.IDENTIFY:
            return padded(args[0], lb)
        if op == Op.RESULT:
            rows, cols = args[2] & 0xFFFF, args[2] >> 16
            if lb is None:
                return None
            return protocol.result_bytes(rows, cols, array_cols or cols, lb)
        return 0

    def _resync(self, problem):
        """Drop the bad candidate's first byte and everything before the next magic byte."""
        nxt = self._buf.find(bytes([protocol.MAGIC]), 1)
        n = nxt if nxt > 0 else len(self._buf)
        del self._buf[:n]
        self.discarded += n
        self.problems.append(problem)

    def _layout(self, header):
        """(link bytes, bytes after the header on the wire, payload bytes kept) of a frame whose
        header `_problem` accepted."""
        op = header.op & ~REPLY
        lb = self.link_bytes
        identify = op == Op.IDENTIFY and header.status == Status.OK
        if identify:
            lb = header.arg1
        if not header.length:      # a header alone is 32 bytes on every link
            return lb, 0, 0
        if lb is None:
            raise ProtocolError(f"reply {op:#x} with a payload arrived before IDENTIFY told the "
                                "link width")
        size = header.length + crc_word_bytes(lb)
        keep = header.arg0 if identify else header.length
        return lb, size, keep

    def _parse_one(self):
        buf = self._buf
        if len(buf) < HEADER_BYTES:
            return False
        problem = self._problem(bytes(buf[:HEADER_BYTES]))
        if problem:
            self._resync(problem)
            return True
        header = protocol.unpack_header(bytes(buf[:HEADER_BYTES]))
        op = header.op & ~REPLY
        lb, size, keep = self._layout(header)
        end = HEADER_BYTES + size
        if len(buf) < end:
            return False
        ok = not header.length or protocol.payload_ok(buf[HEADER_BYTES:end], lb)
        payload = bytes(buf[HEADER_BYTES:HEADER_BYTES + keep])
        del buf[:end]
        if not ok:
            self.bad_payloads += 1
        if op == Op.IDENTIFY and header.status == Status.OK:
            self.link_bytes = lb
        self._frames.append(Frame(op, header.status, header.args, payload, tag=header.tag,
                                  payload_ok=ok, info=header.info))
        return True


def _op_name(op):
    try:
        return Op(op).name
    except ValueError:
        return f"0x{op:02x}"
