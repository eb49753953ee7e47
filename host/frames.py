"""Host end of the frame format (`systolica.protocol`): commands to bytes, bytes to replies.

Nothing here does I/O: the cocotb testbench and the driver both use it over their own transport.
"""

import collections
import dataclasses

import numpy as np

from systolica import protocol
from systolica.config import IDENTIFY_BYTES
from systolica.protocol import (
    HEADER_BYTES,
    REPLY,
    Op,
    Status,
    pack_header,
    pad_to_words,
    padded,
)

__all__ = [
    "DeviceError",
    "Frame",
    "FrameReader",
    "ProtocolError",
    "gemm_blocks_command",
    "gemm_command",
    "identify_command",
    "load_a_blocks_command",
    "load_a_command",
    "result_tile",
    "tiled_vectors",
]


class ProtocolError(RuntimeError):
    """The device sent something the protocol does not allow."""


class DeviceError(RuntimeError):
    """The device rejected a command with an error reply."""

    def __init__(self, op, status, arg0):
        self.op, self.status, self.arg0 = op, status, arg0
        try:
            name = Status(status).name
        except ValueError:
            name = f"status {status}"
        try:
            opname = Op(op & ~REPLY).name
        except ValueError:
            opname = f"opcode 0x{op & ~REPLY:02x}"
        super().__init__(f"device rejected {opname}: {name} (arg0={arg0})")


@dataclasses.dataclass
class Frame:
    op: int        # without the REPLY bit
    status: int
    args: tuple
    payload: bytes = b""
    config: object = None   # an IDENTIFY reply's parsed Config, set by whoever reads it


def identify_command():
    """IDENTIFY, padded to 64 bytes so that any link width sees whole words."""
    return pad_to_words(pack_header(Op.IDENTIFY), protocol.IDENTIFY_PAD)


def _padded(tiles, link_bytes):
    """Bytes of ``tiles`` (tiles, vectors, width), each vector padded to whole link words."""
    count, vectors, width = tiles.shape
    buf = np.zeros((count, vectors, padded(width, link_bytes)), dtype=np.uint8)
    buf[:, :, :width] = tiles
    return buf.tobytes()


def tiled_vectors(x, size, link_bytes):
    """The vectors of int8 matrix ``x`` split into tiles of ``size`` columns: tile by tile, one
    vector (``x[k, tile]``) per row of ``x``, each padded to whole link words."""
    x8 = np.ascontiguousarray(x, dtype=np.int8).view(np.uint8)
    rows, cols = x8.shape
    full = cols // size
    parts = []
    if full:
        parts.append(_padded(x8[:, :full * size].reshape(rows, full, size).transpose(1, 0, 2),
                             link_bytes))
    if cols % size:
        parts.append(_padded(x8[None, :, full * size:], link_bytes))
    return b"".join(parts)


def load_a_command(a, config):
    """LOAD_A for an (N, K) int8 array: row tiles of ``config.rows``, one vector per k."""
    n, k = a.shape
    return (pad_to_words(pack_header(Op.LOAD_A, n, k), config.link_bytes)
            + tiled_vectors(np.asarray(a).T, config.rows, config.link_bytes))


def gemm_command(w, n, config):
    """GEMM for a (K, M) int8 weight matrix against the loaded (N, K) activations."""
    k, m = w.shape
    return (pad_to_words(pack_header(Op.GEMM, n, k, m), config.link_bytes)
            + tiled_vectors(w, config.cols, config.link_bytes))


def _pad_rows(rows, link_bytes):
    """uint8 (count, width) → the same rows each zero-padded to whole link words."""
    count, width = rows.shape
    out = np.zeros((count, padded(width, link_bytes)), dtype=np.uint8)
    out[:, :width] = rows
    return out


def load_a_blocks_command(xq, xd, config):
    """LOAD_A of activations in 32-blocks (arg2 = 1): int8 ``xq`` (N, K) and binary16 block
    scales ``xd`` (N, K/32, uint16 patterns). For each row tile and each block: a scale vector
    (2 bytes a row) then the block's 32 activation vectors."""
    xq = np.ascontiguousarray(xq, dtype=np.int8)
    n, k = xq.shape
    nb = k // 32
    lb = config.link_bytes
    parts = [pad_to_words(pack_header(Op.LOAD_A, n, k, 1), lb)]
    for start in range(0, n, config.rows):
        rows = min(config.rows, n - start)
        scales = _pad_rows(np.ascontiguousarray(
            xd[start:start + rows].T.astype("<u2")).view(np.uint8), lb)       # (nb, ·)
        acts = _pad_rows(xq[start:start + rows].T.view(np.uint8), lb)        # (K, ·)
        acts = acts.reshape(nb, 32 * acts.shape[1])
        parts.append(np.concatenate([scales, acts], axis=1).tobytes())
    return b"".join(parts)


def gemm_blocks_command(raw, fmt, n, config):
    """GEMM of GGUF block weights (arg2 = M | format << 24) against the loaded block
    activations. ``raw`` is the (M, K/32 * block_bytes) uint8 tensor exactly as in the file;
    for each column tile and each block index, the tile's blocks go out in channel order, the
    group padded to whole link words. The bytes of every block are sent unchanged."""
    raw = np.asarray(raw)
    m_out, width = raw.shape
    nb = width // fmt.block_bytes
    lb = config.link_bytes
    blocks = raw.reshape(m_out, nb, fmt.block_bytes)
    parts = [pad_to_words(pack_header(Op.GEMM, n, nb * 32, m_out | fmt.code << 24), lb)]
    for start in range(0, m_out, config.cols):
        tile = blocks[start:start + config.cols].transpose(1, 0, 2)         # (nb, C', B)
        parts.append(_pad_rows(tile.reshape(nb, -1), lb).tobytes())
    return b"".join(parts)


def result_tile(frame, config):
    """Decode a RESULT frame to ``(i, j, block)`` with block an int32 (rows, cols) array."""
    i, j, shape = frame.args
    rows, cols = shape & 0xFFFF, shape >> 16
    stride = padded(4 * cols, config.link_bytes)
    raw = np.frombuffer(frame.payload, dtype=np.uint8).reshape(rows, stride)
    return i, j, raw[:, :4 * cols].copy().view("<i4")


class GemmResult:
    """Assembles one GEMM's reply: RESULT tiles into an (n, m) int64 array, then the GEMM reply
    with its device cycles. `add` returns True once the GEMM reply has come."""

    def __init__(self, n, m, config):
        self.config = config
        self.out = np.zeros((n, m), dtype=np.int64)
        self._seen = np.zeros((n, m), dtype=np.int32)
        self.cycles = None

    def add(self, frame):
        if frame.status:
            raise DeviceError(frame.op, frame.status, frame.args[0])
        if frame.op == Op.GEMM:
            if not (self._seen == 1).all():
                raise ProtocolError("the device's RESULT tiles did not cover the output exactly "
                                    f"once (counts {np.unique(self._seen).tolist()})")
            self.cycles = frame.args[0] | frame.args[1] << 32
            return True
        if frame.op != Op.RESULT:
            raise ProtocolError(f"unexpected {frame} during a GEMM")
        i, j, block = result_tile(frame, self.config)
        rows = slice(i * self.config.rows, i * self.config.rows + block.shape[0])
        cols = slice(j * self.config.cols, j * self.config.cols + block.shape[1])
        self.out[rows, cols] = block
        self._seen[rows, cols] += 1
        return False


class FrameReader:
    """Incremental parser of the device's reply stream.

    ``link_bytes`` may be None until IDENTIFY's reply has told it (that reply carries it).
    Feed bytes with `feed`; take complete frames with `frames`.

    A header that is not a valid reply (bad magic or check byte, no reply bit, an unknown
    opcode or status, a RESULT larger than the device's array, an IDENTIFY of the wrong size)
    is not believed: the reader drops bytes up to the next magic byte after its first one (so
    a real header inside the failed candidate is found) and goes on from there. ``discarded``
    counts the bytes dropped so, ``problems`` keeps the last few reasons. Every length the
    reader waits for is bounded by ``config`` (the device's `Config`, once known; before that by
    the largest array a `Config` allows).
    """

    MAX_SIDE = 64                # Config's largest rows / cols
    PROBLEMS_KEPT = 8

    def __init__(self, link_bytes=None, config=None):
        self.link_bytes = link_bytes
        self.config = config
        self.discarded = 0
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
        _, head, size, _ = self._layout(protocol.unpack_header(bytes(buf[:HEADER_BYTES])))
        return max(head + size - len(buf), 1)

    def _problem(self, raw):
        """Why the 16 bytes ``raw`` are not a reply header this device could send, or None."""
        try:
            op, status, *args = protocol.unpack_header(raw)
        except ValueError as exc:
            return str(exc)
        if not op & REPLY:
            return f"a frame without the reply bit: op 0x{op:02x}"
        op &= ~REPLY
        # An unknown opcode comes back only in the BAD_OPCODE reply to it.
        if status not in set(Status) or (op not in set(Op) and status != Status.BAD_OPCODE):
            return f"unknown opcode 0x{op:02x} or status {status}"
        if op == Op.RESULT and not status:
            rows, cols = args[2] & 0xFFFF, args[2] >> 16
            max_rows = self.config.rows if self.config else self.MAX_SIDE
            max_cols = self.config.cols if self.config else self.MAX_SIDE
            if not (1 <= rows <= max_rows and 1 <= cols <= max_cols):
                return f"a RESULT of {rows}x{cols}, larger than the device's array"
        if op == Op.IDENTIFY and not status:
            lb = args[1]
            if args[0] != IDENTIFY_BYTES or lb < 1 or lb > 64 or lb & (lb - 1) or (
                    self.link_bytes is not None and lb != self.link_bytes):
                return f"an IDENTIFY reply of {args[0]} bytes on a {lb}-byte link"
        return None

    def _resync(self, problem):
        """Drop the bad candidate's first byte and everything before the next magic byte."""
        nxt = self._buf.find(bytes([protocol.MAGIC]), 1)
        n = nxt if nxt > 0 else len(self._buf)
        del self._buf[:n]
        self.discarded += n
        self.problems.append(problem)

    def _layout(self, header):
        """(link bytes, header bytes, payload bytes on the wire, payload bytes kept) of a frame."""
        op, status, *args = header
        op &= ~REPLY
        lb = self.link_bytes
        identify = op == Op.IDENTIFY and status == Status.OK
        if identify:
            lb = args[1]
        if lb is None:
            raise ProtocolError(f"reply {op:#x} arrived before IDENTIFY told the link width")
        head = padded(HEADER_BYTES, lb)
        if identify:
            size, keep = padded(args[0], lb), args[0]
        elif op == Op.RESULT and status == Status.OK:
            rows, cols = args[2] & 0xFFFF, args[2] >> 16
            size = keep = rows * padded(4 * cols, lb)
        else:
            size = keep = 0
        return lb, head, size, keep

    def _parse_one(self):
        buf = self._buf
        if len(buf) < HEADER_BYTES:
            return False
        problem = self._problem(bytes(buf[:HEADER_BYTES]))
        if problem:
            self._resync(problem)
            return True
        header = protocol.unpack_header(bytes(buf[:HEADER_BYTES]))
        op, status, *args = header
        op &= ~REPLY
        lb, head, size, keep = self._layout(header)
        if len(buf) < head + size:
            return False
        payload = bytes(buf[head:head + keep])
        del buf[:head + size]
        if op == Op.IDENTIFY and status == Status.OK:
            self.link_bytes = lb
        self._frames.append(Frame(op, status, tuple(args), payload))
        return True
