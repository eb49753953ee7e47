"""The device as the fuzzer models it (tests/cocotb_fuzz.py): what an accepted LOAD_A or GEMM
header makes the device take as payload, the activations and weights that payload holds, and the
status the device's header checks give (mirroring rtl/header_check.py and the parser)."""

import contextlib
import dataclasses

import numpy as np
from block_data import random_activations, random_blocks

from systolica.host.block_formats import BLOCK, FORMATS
from systolica.host.frames import (
    gemm_blocks_command,
    gemm_command,
    load_a_blocks_command,
    load_a_command,
)
from systolica.protocol import (
    HEADER_BYTES,
    MAGIC,
    Op,
    Status,
    act_lanes,
    crc_word_bytes,
    load_a_tile_bytes,
    padded,
    unpack_header,
)

__all__ = ["ACCEPT", "Loaded", "block_scales_bad", "decode_gemm", "decode_load", "format_of",
           "inf_nan", "op_name", "payload_bytes", "scan_headers", "self_check", "status_name",
           "verdict"]

# --- payload layouts: what an accepted header's arguments make the device take ---------------

def _tiles(total, size):
    return [min(size, total - s) for s in range(0, total, size)]


def format_of(code):
    return next(f for f in FORMATS.values() if f.code == code)


def payload_bytes(op, args, cfg):
    """Bytes of payload (padded vectors, without the CRC word) that an accepted LOAD_A or GEMM
    with arguments ``args`` takes on ``cfg``'s link."""
    lb = cfg.link_bytes
    n, k, arg2 = args
    if op == Op.LOAD_A:
        return sum(load_a_tile_bytes(r, k, cfg.rows, lb, blocks=bool(arg2))
                   for r in _tiles(n, cfg.rows))
    m, code = arg2 & 0xFFFF, arg2 >> 24
    if code:
        bb = format_of(code).block_bytes
        return sum(k // BLOCK * padded(c * bb, lb) for c in _tiles(m, cfg.cols))
    return sum(k * padded(c, lb) for c in _tiles(m, cfg.cols))


class _Reader:
    def __init__(self, data):
        self.data, self.at = bytes(data), 0

    def take(self, width, lb):
        """``width`` bytes, then on to the next word (``lb`` 0: no padding after them)."""
        part = self.data[self.at:self.at + width]
        self.at += padded(width, lb) if lb else width
        return np.frombuffer(part, dtype=np.uint8)

    def align(self, lb):
        self.at = padded(self.at, lb)


def decode_load(payload, args, cfg):
    """The activations an accepted LOAD_A's payload holds: int8 A (N, K), or for 32-blocks
    (int8 xq (N, K), binary16 scales xd (N, K/32))."""
    n, k, blocks = args
    lb = cfg.link_bytes
    rd = _Reader(payload)
    a = np.zeros((n, k), dtype=np.int8)
    xd = np.zeros((n, max(k // BLOCK, 1)), dtype=np.uint16)
    packed = act_lanes(cfg.rows, lb) > 1      # vectors of `rows` bytes, packed
    for i, r in enumerate(_tiles(n, cfg.rows)):
        rows = slice(i * cfg.rows, i * cfg.rows + r)
        for kk in range(k):
            if blocks and kk % BLOCK == 0:
                xd[rows, kk // BLOCK] = rd.take(2 * r, lb).view("<u2")
            a[rows, kk] = (rd.take(cfg.rows, 0)[:r] if packed else rd.take(r, lb)).view(np.int8)
        rd.align(lb)
    return (a, xd[:, :k // BLOCK]) if blocks else a


def decode_gemm(payload, args, cfg):
    """The weights an accepted GEMM's payload holds: int8 W (K, M), or the block tensor
    (M, K/32 * block_bytes) uint8."""
    _, k, arg2 = args
    m, code = arg2 & 0xFFFF, arg2 >> 24
    lb = cfg.link_bytes
    rd = _Reader(payload)
    if not code:
        w = np.zeros((k, m), dtype=np.int8)
        for j, c in enumerate(_tiles(m, cfg.cols)):
            for kk in range(k):
                w[kk, j * cfg.cols:j * cfg.cols + c] = rd.take(c, lb).view(np.int8)
        return w
    bb = format_of(code).block_bytes
    raw = np.zeros((m, k // BLOCK * bb), dtype=np.uint8)
    for j, c in enumerate(_tiles(m, cfg.cols)):
        for b in range(k // BLOCK):
            group = rd.take(c * bb, lb).reshape(c, bb)
            raw[j * cfg.cols:j * cfg.cols + c, b * bb:(b + 1) * bb] = group
    return raw


def inf_nan(halves):
    return bool((np.asarray(halves, dtype=np.uint16) & 0x7C00 == 0x7C00).any())


def block_scales_bad(raw, code):
    """Whether a block tensor holds an inf or NaN scale (or Q4_1 offset)."""
    fmt = format_of(code)
    blocks = raw.reshape(raw.shape[0], -1, fmt.block_bytes)
    fields = [blocks[..., 0:2]] + ([blocks[..., 2:4]] if fmt.has_offset else [])
    return any(inf_nan(np.ascontiguousarray(f).view("<u2")) for f in fields)


def self_check(cfg, rng, nrng):
    """`payload_bytes` and the decoders against the host's own frame builders."""
    lb = cfg.link_bytes
    tail = HEADER_BYTES, crc_word_bytes(lb)
    for _ in range(20):
        n, k, m = rng.randint(1, 3 * cfg.rows + 1), rng.randint(1, 70), rng.randint(1, 40)
        a = nrng.integers(-128, 128, (n, k))
        w = nrng.integers(-128, 128, (k, m))
        frames = [(load_a_command(a, cfg), Op.LOAD_A, (n, k, 0), a),
                  (gemm_command(w, n, cfg), Op.GEMM, (n, k, m), w)]
        kb = BLOCK * rng.randint(1, 3)
        xq, xd = random_activations(nrng, n, kb)
        frames.append((load_a_blocks_command(xq, xd, cfg), Op.LOAD_A, (n, kb, 1), (xq, xd)))
        for fmt in FORMATS.values():
            raw = random_blocks(fmt, m, kb // BLOCK, nrng)
            frames.append((gemm_blocks_command(raw, fmt, n, cfg), Op.GEMM,
                           (n, kb, m | fmt.code << 24), raw))
        for data, op, args, want in frames:
            head = unpack_header(data[:HEADER_BYTES])
            size = payload_bytes(op, args, cfg)
            assert head.args == args and head.length == size == len(data) - sum(tail), \
                (op, args, head, size, len(data))
            body = data[HEADER_BYTES:HEADER_BYTES + size]
            if op == Op.LOAD_A:
                got = decode_load(body, (args[0], args[1], args[2]), cfg)
            else:
                got = decode_gemm(body, args, cfg)
            pairs = zip(got, want, strict=True) if isinstance(want, tuple) else [(got, want)]
            for g, x in pairs:
                assert np.array_equal(np.asarray(g).astype(np.int64),
                                      np.asarray(x).astype(np.int64)), (op, args)


# --- the header checks, as the device makes them ---------------------------------------------

@dataclasses.dataclass
class Loaded:
    """The A the device holds after a LOAD_A it answered OK."""
    n: int
    k: int
    blocks: bool
    data: object        # int8 A, or (xq, xd)


ACCEPT = "accept"


def verdict(h, cfg, loaded):
    """What the device does with the header ``h`` (a `protocol.Header` whose CRC holds): an
    error status (or OK for IDENTIFY), or `ACCEPT` (a LOAD_A or GEMM that takes its payload)."""
    if h.status or h.info or h.arg3:
        return Status.BAD_CHECK
    n, k, arg2 = h.args
    n_ok, k_ok = 1 <= n <= 0xFFFF, 1 <= k <= cfg.max_k
    blocks = bool(cfg.block_formats)
    if h.op == Op.IDENTIFY:
        return Status.OK
    if h.op == Op.LOAD_A:
        if not (arg2 == 0 or (arg2 == 1 and blocks)):
            return Status.BAD_FORMAT
        if not n_ok or not k_ok or (arg2 and k % BLOCK):
            return Status.BAD_LENGTH
        if -(-n // cfg.rows) * k > cfg.act_depth:
            return Status.BAD_LENGTH
        return ACCEPT
    if h.op == Op.GEMM:
        m, code = arg2 & 0xFFFFFF, arg2 >> 24
        if not n_ok or not k_ok or not 1 <= m <= 0xFFFF:
            return Status.BAD_LENGTH
        if loaded is None or (n, k) != (loaded.n, loaded.k):
            return Status.NOT_LOADED
        if code >= 4 or not cfg.format_mask >> code & 1 or (code != 0) != loaded.blocks:
            return Status.BAD_FORMAT
        return ACCEPT
    return Status.BAD_OPCODE


def op_name(op):
    return Op(op).name if op in set(Op) else f"op 0x{op:02x}"


def status_name(status):
    return Status(status).name if status in set(Status) else f"status {status}"


def scan_headers(data):
    """Every complete header with a right CRC in ``data``: [(position, Header)]."""
    found = []
    at = data.find(MAGIC)
    while 0 <= at <= len(data) - HEADER_BYTES:
        with contextlib.suppress(ValueError):
            found.append((at, unpack_header(data[at:at + HEADER_BYTES])))
        at = data.find(MAGIC, at + 1)
    return found
