"""Host end of the frame format (`systolica.protocol`): commands to bytes, bytes to replies.

Nothing here does I/O: the cocotb testbench and the driver both use it over their own transport.
"""

import dataclasses

import numpy as np

from systolica import protocol
from systolica.protocol import (
    REPLY,
    Op,
    Status,
    act_lanes,
    crc_word,
    pack_header,
    pad_to_words,
    padded,
)

__all__ = [
    "CorruptReply",
    "DeviceError",
    "Frame",
    "GemmResult",
    "ProtocolError",
    "dram_check_command",
    "gemm_blocks_command",
    "gemm_command",
    "gemm_dram_command",
    "identify_command",
    "load_a_blocks_command",
    "load_a_command",
    "result_tile_rows",
    "result_tiles",
    "tiled_vectors",
    "write_dram_command",
]


class ProtocolError(RuntimeError):
    """The device sent something the protocol does not allow."""


class CorruptReply(ProtocolError):
    """A reply arrived whose payload CRC word did not check (damaged on the link)."""


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
    tag: int = 0            # the tag of the command this answers (CREDIT: 0)
    payload_ok: bool = True  # the payload's CRC word checked (True without a payload)
    info: int = 0           # the header's info field (IDENTIFY: the line's error counts)


def _frame(op, args, payload, link_bytes, tag):
    """A command frame: header (``length`` = the payload's bytes), the payload (already whole
    words) and its CRC word. `protocol.frame` with one copy of a payload of megabytes."""
    if len(payload) % link_bytes:
        raise ValueError(f"a payload of {len(payload)} bytes is not whole {link_bytes}-byte "
                         "words")
    head = pack_header(op, *args, tag=tag, length=len(payload))
    if not payload:
        return head
    return b"".join((head, payload, crc_word(payload, link_bytes)))


def identify_command(*, tag=0):
    """IDENTIFY: its 32-byte header, then 32 zero bytes (`IDENTIFY_PAD` in all) so that any
    link width sees whole words."""
    head = pack_header(Op.IDENTIFY, tag=tag)
    return head + bytes(protocol.IDENTIFY_PAD - len(head))


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


def _act_vectors(x8, rows, link_bytes):
    """uint8 (K, rows') activation vectors of one row tile as LOAD_A carries them: packed
    (`protocol.act_lanes`: each vector ``rows`` bytes, zeros for rows past the tile's, only the
    last word padded) or each padded to whole words; as an array of rows of bytes."""
    if act_lanes(rows, link_bytes) == 1:
        return _pad_rows(x8, link_bytes)
    out = np.zeros((x8.shape[0], rows), dtype=np.uint8)
    out[:, :x8.shape[1]] = x8
    return out


def load_a_command(a, config, *, tag=0):
    """LOAD_A for an (N, K) int8 array: row tiles of ``config.rows``, one vector per k."""
    n, k = a.shape
    lb, rows = config.link_bytes, config.rows
    a8 = np.ascontiguousarray(a, dtype=np.int8).view(np.uint8)
    tiles = [pad_to_words(_act_vectors(a8[r0:r0 + rows].T, rows, lb).tobytes(), lb)
             for r0 in range(0, n, rows)]
    return _frame(Op.LOAD_A, (n, k), b"".join(tiles), lb, tag)


def gemm_command(w, n, config, *, tag=0):
    """GEMM for a (K, M) int8 weight matrix against the loaded (N, K) activations."""
    k, m = w.shape
    lb = config.link_bytes
    return _frame(Op.GEMM, (n, k, m), tiled_vectors(w, config.cols, lb), lb, tag)


def _pad_rows(rows, link_bytes):
    """uint8 (count, width) → the same rows each zero-padded to whole link words."""
    count, width = rows.shape
    out = np.zeros((count, padded(width, link_bytes)), dtype=np.uint8)
    out[:, :width] = rows
    return out


def load_a_blocks_command(xq, xd, config, *, tag=0):
    """LOAD_A of activations in 32-blocks (arg2 = 1): int8 ``xq`` (N, K) and binary16 block
    scales ``xd`` (N, K/32, uint16 patterns). For each row tile and each block: a scale vector
    (2 bytes a row) then the block's 32 activation vectors."""
    xq = np.ascontiguousarray(xq, dtype=np.int8)
    n, k = xq.shape
    nb = k // 32
    lb = config.link_bytes
    parts = []
    for start in range(0, n, config.rows):
        rows = min(config.rows, n - start)
        scales = _pad_rows(np.ascontiguousarray(
            xd[start:start + rows].T.astype("<u2")).view(np.uint8), lb)       # (nb, ·)
        acts = _act_vectors(xq[start:start + rows].T.view(np.uint8), config.rows, lb)
        acts = acts.reshape(nb, 32 * acts.shape[1])
        parts.append(np.concatenate([scales, acts], axis=1).tobytes())
    return _frame(Op.LOAD_A, (n, k, 1), b"".join(parts), lb, tag)


def gemm_blocks_command(raw, fmt, n, config, *, tag=0):
    """GEMM of GGUF block weights (arg2 = M | format << 24) against the loaded block
    activations. ``raw`` is the (M, K/32 * block_bytes) uint8 tensor exactly as in the file;
    for each column tile and each block index, the tile's blocks go out in channel order, the
    group padded to whole link words. The bytes of every block are sent unchanged."""
    raw = np.asarray(raw)
    m_out, width = raw.shape
    nb = width // fmt.block_bytes
    lb = config.link_bytes
    blocks = raw.reshape(m_out, nb, fmt.block_bytes)
    parts = []
    for start in range(0, m_out, config.cols):
        tile = blocks[start:start + config.cols].transpose(1, 0, 2)         # (nb, C', B)
        parts.append(_pad_rows(tile.reshape(nb, -1), lb).tobytes())
    return _frame(Op.GEMM, (n, nb * 32, m_out | fmt.code << 24), b"".join(parts), lb, tag)


def write_dram_command(address, data, config, *, tag=0):
    """WRITE_DRAM of ``data`` (whole link words, at most `protocol.MAX_WRITE_DRAM` bytes) to
    the DRAM from byte ``address`` on."""
    return _frame(Op.WRITE_DRAM, (address,), data, config.link_bytes, tag)


def dram_check_command(address, length, *, tag=0):
    """DRAM_CHECK: the device checks the ``length`` bytes at byte ``address`` against the CRC
    word stored after them (a header alone)."""
    return pack_header(Op.DRAM_CHECK, address, length, tag=tag)


def gemm_dram_command(n, k, arg2, address, length, *, tag=0):
    """GEMM_DRAM: a GEMM of arguments (``n``, ``k``, ``arg2``) whose payload, ``length`` bytes
    and its CRC word, is stored in the DRAM at byte ``address`` (a header alone)."""
    return pack_header(Op.GEMM_DRAM, n, k, arg2, tag=tag, info=length, arg3=address)


def result_tile_rows(config, *, pair_sum=False):
    """Output rows one row tile's RESULT frame holds: ``config.rows``, or with ``pair_sum`` (a
    GEMM_DRAM with `protocol.PAIR_SUM`: each output row the sum of result rows 2t and 2t+1)
    half as many."""
    return config.rows // 2 if pair_sum else config.rows


def result_tiles(frame, config, *, pair_sum=False):
    """Decode a RESULT frame to ``(i, j, block)`` tuples, block an int32 (rows, cols) array: one
    tile, or a GEMM_DRAM's whole frame's every column tile (`protocol.result_bytes`). Row r of
    block ``(i, j)`` is output row ``i * result_tile_rows(config, pair_sum=pair_sum) + r``;
    with ``pair_sum`` a frame of more rows than a tile's pair sums raises `ProtocolError`."""
    i, j, shape = frame.args
    rows, cols = shape & 0xFFFF, shape >> 16
    if rows > result_tile_rows(config, pair_sum=pair_sum):
        raise ProtocolError(f"a RESULT of {rows} rows where a row tile has "
                            f"{result_tile_rows(config, pair_sum=pair_sum)}"
                            f"{' pair sums' if pair_sum else ''}: {frame.args}")
    payload = np.frombuffer(frame.payload, dtype=np.uint8)
    tiles, at = [], 0
    for c0 in range(0, cols, config.cols):
        width = min(config.cols, cols - c0)
        stride = padded(4 * width, config.link_bytes)
        raw = payload[at:at + rows * stride].reshape(rows, stride)
        tiles.append((i, j + c0 // config.cols, raw[:, :4 * width].copy().view("<i4")))
        at += rows * stride
    return tiles


class GemmResult:
    """Assembles the replies of the GEMM sent with ``tag``: RESULT tiles into an (n, m) int64
    array, then the GEMM reply with its device cycles. `add` returns True once the GEMM reply
    has come.

    With ``pair_sum`` (a GEMM_DRAM of ``n`` rows with `protocol.PAIR_SUM`; ``n`` even) the
    device sends the binary32 sums of result rows 2t and 2t+1: the output is (n/2, m), a row
    tile's RESULT holds ``rows / 2`` of its rows (`result_tiles`).

    With ``argmax`` (a GEMM_DRAM with `protocol.ARGMAX` whose results are one row: ``n`` 1, or
    2 with ``pair_sum``) the device sends one RESULT frame of arguments (0, 0, 1 | 2 << 16)
    whose row is the column of the largest result and its binary32 pattern: the output
    (``out``, once the GEMM reply has come) is that ``(column, bits)``, two ints. No RESULT,
    a second one, other arguments or a column beyond ``m`` raise `ProtocolError`.

    A reply with another tag raises `ProtocolError`; a RESULT whose payload CRC failed,
    `CorruptReply`; an error reply, or a GEMM reply whose status is not OK (``BAD_CRC``: a
    weight payload arrived damaged and every RESULT of the GEMM is void), `DeviceError`.
    """

    def __init__(self, n, m, config, tag, *, pair_sum=False, argmax=False):
        if pair_sum and n % 2:
            raise ValueError(f"pair sums need an even number of rows, not n = {n}")
        rows = n // 2 if pair_sum else n
        if argmax and rows != 1:
            raise ValueError(f"argmax needs results of one row, not {rows} (n = {n}"
                             f"{', pair sums' if pair_sum else ''})")
        self.config = config
        self.tag = tag
        self.pair_sum = pair_sum
        self.argmax = argmax
        self.m = m
        self.out = self._seen = None
        if not argmax:
            self.out = np.zeros((rows, m), dtype=np.int64)
            self._seen = np.zeros((rows, m), dtype=np.int32)
        self.cycles = None

    def add(self, frame):
        if frame.tag != self.tag:
            raise ProtocolError(f"a reply with tag {frame.tag} during the GEMM sent with tag "
                                f"{self.tag}: {frame}")
        if frame.status:
            raise DeviceError(frame.op, frame.status, frame.args[0])
        if frame.op == Op.GEMM:
            if self.argmax and self.out is None:
                raise ProtocolError(f"the GEMM reply of tag {self.tag} came without the argmax "
                                    "RESULT")
            if not self.argmax and not (self._seen == 1).all():
                raise ProtocolError("the device's RESULT tiles did not cover the output exactly "
                                    f"once (counts {np.unique(self._seen).tolist()})")
            self.cycles = frame.args[0] | frame.args[1] << 32
            return True
        if frame.op != Op.RESULT:
            raise ProtocolError(f"unexpected {frame} during a GEMM")
        if not frame.payload_ok:
            raise CorruptReply(f"RESULT {frame.args[:2]} of GEMM tag {self.tag}: payload CRC "
                               "wrong")
        if self.argmax:
            self.out = self._argmax(frame)
            return False
        tile_rows = result_tile_rows(self.config, pair_sum=self.pair_sum)
        for i, j, block in result_tiles(frame, self.config, pair_sum=self.pair_sum):
            r0, c0 = i * tile_rows, j * self.config.cols
            if r0 + block.shape[0] > self.out.shape[0] or c0 + block.shape[1] > self.out.shape[1]:
                raise ProtocolError(f"RESULT tile {i},{j} of {block.shape[0]}x{block.shape[1]} "
                                    f"lies outside the {self.out.shape[0]}x{self.out.shape[1]} "
                                    "output")
            rows = slice(r0, r0 + block.shape[0])
            cols = slice(c0, c0 + block.shape[1])
            self.out[rows, cols] = block
            self._seen[rows, cols] += 1
        return False

    def _argmax(self, frame):
        """(column, bits) of an argmax RESULT ``frame`` (the first one: else `ProtocolError`)."""
        if self.out is not None:
            raise ProtocolError(f"a second argmax RESULT of GEMM tag {self.tag}: {frame.args}")
        if tuple(frame.args) != (0, 0, 1 | 2 << 16):
            raise ProtocolError(f"an argmax RESULT must have arguments (0, 0, 1 | 2 << 16), not "
                                f"{frame.args}")
        row = np.concatenate([block[0] for _, _, block in result_tiles(frame, self.config)])
        column, bits = (int(v) for v in row.view(np.uint32))
        if column >= self.m:
            raise ProtocolError(f"the argmax RESULT of GEMM tag {self.tag} says column {column}, "
                                f"beyond M = {self.m}")
        return column, bits
