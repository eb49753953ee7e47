"""Fuzzing the accelerator's link in cocotb (issue 18, part 4); run by tests/test_fuzz.py.

The test `fuzz` sends bursts of malformed frames, with valid commands among them, through
`LinkBench`. After each burst it waits until the device reports (CREDIT) every byte consumed
while it waits for a header with nothing buffered: a burst that ends inside a frame (a quarter
of them; the others end with zero words that finish any open frame) is reported only once the
idle abort (`Config.abort_cycles`) has dropped that frame. Then a valid IDENTIFY must be answered
with the right configuration (every reply before its own belongs to the burst), and a small
LOAD_A + GEMM must come back bit-exact against numpy (or the bit-exact block model).

The replies of a burst are judged against the bytes the burst put on the wire, not against what
each frame was meant to be. Every complete header whose CRC holds is found in the burst's bytes
(`scan_headers`); a reply is matched to one by its tag (every header the fuzzer writes has a tag
of its own). Then:

* an OK LOAD_A or GEMM reply must answer a header that starts on a word boundary, whose payload
  (as long as its arguments say) and CRC word follow it on the wire, complete and intact; a
  GEMM's results must equal the model's for the A the device last loaded OK. Anything else is a
  *wrong result*: in particular an OK reply to a damaged frame (flipped, cut off, swallowed);
* every other reply is checked too (these are *anomalies*, also failures): a reply whose tag no
  valid header on the wire carries; an error status other than the one the header's checks
  give (`verdict`, mirroring rtl/header_check.py and the parser) or, for an accepted command,
  other than its payload gives (ABORTED if cut off, BAD_CRC, BAD_SCALE); a reply to a header that
  lies in the payload of one the device had taken or skipped by its length (payloads are not
  searched); and a header on a word boundary, outside every such payload, that got no reply.

A burst that is not answered (its bytes not consumed, or no IDENTIFY reply after it) is a *hang*.
Figures (frames per kind, replies per status, hangs, wrong results, anomalies, the host's longest
credit stall) go to the JSON report named in the case and to the log. A failure's message names
the seed, the burst and its frames; the report holds the burst's bytes as hex.

The case comes as JSON in SYSTOLICA_CASE: frames (malformed frames to try), seed, idle,
backpressure, report (path), name (of the configuration, for messages), replay (optional: the
bytes of one burst as hex, sent first).
"""

import collections
import contextlib
import dataclasses
import json
import os
import random
import time

import cocotb
import numpy as np
from block_data import random_activations, random_blocks
from cocotb.triggers import ClockCycles

from systolica.config import Config
from systolica.host.block_formats import BLOCK, FORMATS, block_gemm_reference
from systolica.host.credit import CreditWindow
from systolica.host.frame_reader import FrameReader
from systolica.host.frames import (
    gemm_blocks_command,
    gemm_command,
    identify_command,
    load_a_blocks_command,
    load_a_command,
    result_tile,
)
from systolica.host.session import Session
from systolica.protocol import (
    HEADER_BYTES,
    MAGIC,
    REPLY,
    Op,
    Status,
    crc_word,
    crc_word_bytes,
    pack_header,
    padded,
    payload_ok,
    unpack_header,
)
from systolica.sim.testbench import LinkBench, gemm_reference

KINDS = ("random_bytes", "header_flip", "payload_flip", "truncated", "bad_size",
         "unknown_opcode", "magic_payload", "embedded_headers", "garbage_between")

CHECKED_WAIT = 100_000      # cycles a burst may take to be consumed, or a reply to come
POLL = 16                   # cycles between looks at the replies while waiting
MAX_REPORTED = 20           # failures kept in full in the report


# --- payload layouts: what an accepted header's arguments make the device take ---------------

def _tiles(total, size):
    return [min(size, total - s) for s in range(0, total, size)]


def _fmt(code):
    return next(f for f in FORMATS.values() if f.code == code)


def payload_bytes(op, args, cfg):
    """Bytes of payload (padded vectors, without the CRC word) that an accepted LOAD_A or GEMM
    with arguments ``args`` takes on ``cfg``'s link."""
    lb = cfg.link_bytes
    n, k, arg2 = args
    if op == Op.LOAD_A:
        if arg2:
            return sum(k // BLOCK * (padded(2 * r, lb) + BLOCK * padded(r, lb))
                       for r in _tiles(n, cfg.rows))
        return sum(k * padded(r, lb) for r in _tiles(n, cfg.rows))
    m, code = arg2 & 0xFFFF, arg2 >> 24
    if code:
        bb = _fmt(code).block_bytes
        return sum(k // BLOCK * padded(c * bb, lb) for c in _tiles(m, cfg.cols))
    return sum(k * padded(c, lb) for c in _tiles(m, cfg.cols))


class _Reader:
    def __init__(self, data):
        self.data, self.at = bytes(data), 0

    def take(self, width, lb):
        part = self.data[self.at:self.at + width]
        self.at += padded(width, lb)
        return np.frombuffer(part, dtype=np.uint8)


def decode_load(payload, args, cfg):
    """The activations an accepted LOAD_A's payload holds: int8 A (N, K), or for 32-blocks
    (int8 xq (N, K), binary16 scales xd (N, K/32))."""
    n, k, blocks = args
    lb = cfg.link_bytes
    rd = _Reader(payload)
    a = np.zeros((n, k), dtype=np.int8)
    xd = np.zeros((n, max(k // BLOCK, 1)), dtype=np.uint16)
    for i, r in enumerate(_tiles(n, cfg.rows)):
        rows = slice(i * cfg.rows, i * cfg.rows + r)
        for kk in range(k):
            if blocks and kk % BLOCK == 0:
                xd[rows, kk // BLOCK] = rd.take(2 * r, lb).view("<u2")
            a[rows, kk] = rd.take(r, lb).view(np.int8)
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
    bb = _fmt(code).block_bytes
    raw = np.zeros((m, k // BLOCK * bb), dtype=np.uint8)
    for j, c in enumerate(_tiles(m, cfg.cols)):
        for b in range(k // BLOCK):
            group = rd.take(c * bb, lb).reshape(c, bb)
            raw[j * cfg.cols:j * cfg.cols + c, b * bb:(b + 1) * bb] = group
    return raw


def _inf_nan(halves):
    return bool((np.asarray(halves, dtype=np.uint16) & 0x7C00 == 0x7C00).any())


def block_scales_bad(raw, code):
    """Whether a block tensor holds an inf or NaN scale (or Q4_1 offset)."""
    fmt = _fmt(code)
    blocks = raw.reshape(raw.shape[0], -1, fmt.block_bytes)
    fields = [blocks[..., 0:2]] + ([blocks[..., 2:4]] if fmt.has_offset else [])
    return any(_inf_nan(np.ascontiguousarray(f).view("<u2")) for f in fields)


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


# --- the host side: a Session that also takes in-burst IDENTIFY replies ----------------------

class TaggedCredit(CreditWindow):
    """The credit window, re-based by every IDENTIFY reply from where that IDENTIFY's header was
    sent (an IDENTIFY inside a burst is answered too; `Session.identify` assumes the last one
    sent is the one answered)."""

    def __init__(self):
        super().__init__()
        self.identify_at = {}      # tag -> bytes sent before that IDENTIFY's header

    def on_identify(self, frame, config):
        at = self.identify_at.pop(frame.tag, None)
        if at is not None:
            self._sent_before_identify = at
        super().on_identify(frame, config)


class LenientReader(FrameReader):
    """`FrameReader` that also takes an error reply other than BAD_OPCODE to an unknown opcode
    (the device checks a header's must-be-zero fields first: BAD_CHECK)."""

    def _problem(self, raw):
        problem = super()._problem(raw)
        if problem and problem.startswith("unknown opcode"):
            h = unpack_header(raw)
            if h.op & REPLY and h.status in set(Status) and h.status and not h.length:
                return None
        return problem


class FuzzSession(Session):
    """`Session` for the fuzzer. Differences: a `LenientReader`; an IDENTIFY payload that
    describes no configuration is left to the fuzzer's judge; IDENTIFY replies inside bursts
    re-base the credit (`TaggedCredit`); the longest time the host had bytes to send and no credit for them while the device had
    none buffered (its idle abort may count such cycles) is measured."""

    def __init__(self):
        super().__init__()
        self.reader = LenientReader()
        self.credit = TaggedCredit()
        self.clock = None           # () -> the current cycle
        self.device_empty = bool    # () -> the device's receive buffer is empty
        self.max_stall = 0
        self._stalled_since = None

    @staticmethod
    def _identify_config(payload):
        try:
            return Config.from_identify(payload)
        except (ValueError, TypeError):
            return None                  # judged by the fuzzer

    def take(self, limit=None, *, unit=1):
        chunk = super().take(limit, unit=unit)
        now = self.clock() if self.clock else 0
        if self.unsent and not chunk and self.device_empty():
            if self._stalled_since is None:
                self._stalled_since = now
        elif self._stalled_since is not None:
            self.max_stall = max(self.max_stall, now - self._stalled_since)
            self._stalled_since = None
        return chunk


# --- the burst generator ---------------------------------------------------------------------

@dataclasses.dataclass
class Piece:
    """One frame (or stretch of garbage) of a burst: its kind, where it starts in the burst,
    the tags of the headers written in it, and what it was meant to be."""
    kind: str
    start: int
    end: int
    tags: list
    what: str


class Burst:
    def __init__(self, index):
        self.index = index
        self.data = bytearray()
        self.pieces = []

    def add(self, kind, data, tags, what):
        start = len(self.data)
        self.data += data
        self.pieces.append(Piece(kind, start, len(self.data), tags, what))

    def describe(self, limit=None):
        parts = [f"{p.kind}@{p.start}-{p.end} tags {p.tags}: {p.what}" for p in self.pieces]
        return "; ".join(parts[:limit])

    def piece_of(self, tag):
        return next((p for p in self.pieces if tag in p.tags), None)


class Generator:
    """Makes bursts of malformed frames and valid commands (seeded)."""

    def __init__(self, cfg, rng, nrng, next_tag):
        self.cfg = cfg
        self.lb = cfg.link_bytes
        self.rng = rng
        self.nrng = nrng
        self.next_tag = next_tag
        self.loaded = None          # (n, k, blocks) of the last LOAD_A meant to load
        self.blocks = bool(cfg.block_formats)

    # valid commands: (bytes, op, args, description)

    def _use_blocks(self):
        # A build without block formats gets some too: the device must refuse them.
        return self.rng.random() < (0.5 if self.blocks else 0.15)

    def identify(self, tag):
        return identify_command(tag=tag), "IDENTIFY"

    def load_a(self, tag, *, blocks=None):
        r, cfg = self.rng, self.cfg
        blocks = self._use_blocks() if blocks is None else blocks
        n = r.randint(1, 2 * cfg.rows + 1)
        if blocks:
            k = BLOCK * r.randint(1, 2)
            xq, xd = random_activations(self.nrng, n, k)
            data = load_a_blocks_command(xq, xd, cfg, tag=tag)
        else:
            k = r.randint(1, 48)
            data = load_a_command(self.nrng.integers(-128, 128, (n, k)), cfg, tag=tag)
        if not blocks or self.blocks:
            self.loaded = (n, k, blocks)
        return data, f"LOAD_A {n}x{k}{' blocks' if blocks else ''}"

    def _gemm_shape(self):
        r = self.rng
        if self.loaded and r.random() < 0.85:
            return self.loaded
        blocks = self._use_blocks()
        k = BLOCK * r.randint(1, 2) if blocks else r.randint(1, 48)
        return r.randint(1, 2 * self.cfg.rows + 1), k, blocks

    def gemm(self, tag):
        r, cfg = self.rng, self.cfg
        n, k, blocks = self._gemm_shape()
        m = r.randint(1, 2 * cfg.cols + 1)
        if blocks:
            carried = [f for f in FORMATS.values() if f.code in cfg.block_formats]
            fmt = r.choice(carried or list(FORMATS.values()))
            raw = random_blocks(fmt, m, k // BLOCK, self.nrng)
            return gemm_blocks_command(raw, fmt, n, cfg, tag=tag), f"GEMM {n}x{k}x{m} {fmt.name}"
        w = self.nrng.integers(-128, 128, (k, m))
        return gemm_command(w, n, cfg, tag=tag), f"GEMM {n}x{k}x{m}"

    def valid(self, tag, ops=(Op.IDENTIFY, Op.LOAD_A, Op.GEMM)):
        op = self.rng.choices(ops, weights=[{Op.IDENTIFY: 2, Op.LOAD_A: 3, Op.GEMM: 4}[o]
                                            for o in ops])[0]
        return {Op.IDENTIFY: self.identify, Op.LOAD_A: self.load_a, Op.GEMM: self.gemm}[op](tag)

    def _damaged(self, tag, ops=(Op.IDENTIFY, Op.LOAD_A, Op.GEMM)):
        """A valid command about to be damaged: the A meant to be loaded stays as it was."""
        loaded = self.loaded
        data, what = self.valid(tag, ops)
        self.loaded = loaded
        return data, what

    # pieces of malformed frames

    def _random(self, size, magic=0.0):
        data = bytearray(self.rng.randbytes(size))
        for at in range(0, size, self.lb):
            if self.rng.random() < magic:
                data[at] = MAGIC
        return bytes(data)

    def _flip(self, data, lo, hi):
        data = bytearray(data)
        bits = self.rng.sample(range(8 * lo, 8 * hi), min(self.rng.randint(1, 3), 8 * (hi - lo)))
        for bit in bits:
            data[bit // 8] ^= 1 << bit % 8
        return bytes(data), [b - 8 * lo for b in bits]

    def _payload(self, size, crc_ok=True):
        """``size`` random bytes with MAGIC on some words, then a CRC word (right or not)."""
        body = self._random(size, magic=self.rng.choice([0.0, 0.3, 1.0]))
        word = crc_word(body, self.lb)
        if not crc_ok:
            word = word[:-1] + bytes([word[-1] ^ 0x40])
        return body + word

    def _words(self, size):
        """``size`` rounded up to whole link words, most of the time."""
        return padded(size, self.lb) if self.rng.random() < 0.8 else size

    def random_bytes(self, tags):
        size = self._words(self.rng.randint(1, 96))
        return self._random(size, magic=self.rng.choice([0.0, 0.0, 0.5])), f"{size} bytes"

    def header_flip(self, tags):
        tag = self.next_tag()
        tags.append(tag)
        data, what = self._damaged(tag)
        data, bits = self._flip(data, 0, HEADER_BYTES)
        return data, f"{what}, header bits {bits} flipped"

    def payload_flip(self, tags):
        tag = self.next_tag()
        tags.append(tag)
        data, what = self._damaged(tag, ops=(Op.LOAD_A, Op.GEMM))
        data, bits = self._flip(data, HEADER_BYTES, len(data))
        return data, f"{what}, payload bits {bits} flipped"

    def truncated(self, tags):
        tag = self.next_tag()
        tags.append(tag)
        data, what = self._damaged(tag)
        cut = self.rng.randint(1, len(data) - 1)
        return data[:cut], f"{what}, cut to {cut} of {len(data)} bytes"

    def _length_and_payload(self, args_size=None):
        """A header's ``length`` that is wrong or strange, and the bytes sent after the header:
        (length, bytes, description)."""
        r, lb = self.rng, self.lb
        choices = ["zero", "small", "huge", "odd"] if lb > 1 else ["zero", "small", "huge"]
        if args_size is not None:
            choices += ["more", "less"]
        how = r.choice(choices)
        if how == "zero":
            return 0, b"", "length 0"
        if how == "huge":
            # Aligned: a refused header's payload is skipped until the idle abort.
            length = r.randrange(1 << 16, 1 << 32) // lb * lb
            if r.random() < 0.5:
                length = r.choice([0xFFFFFFFF // lb * lb, 1 << 31])
            return length, self._random(self._words(r.randint(0, 64)), 0.3), f"length {length}"
        if how == "odd":
            length = padded(r.randint(1, 200), lb) + r.randint(1, lb - 1)
            return length, self._payload(padded(length, lb)), f"length {length} (not words)"
        if how == "small":
            length = padded(r.randint(1, 200), lb)
        elif how == "more":
            length = args_size + lb * r.randint(1, 16)
        else:
            length = max(lb, args_size - lb * r.randint(1, 16))
        return length, self._payload(length, r.random() < 0.7), f"length {length}"

    def bad_size(self, tags):
        """A header whose CRC is right but whose sizes, format or length are impossible."""
        r, cfg = self.rng, self.cfg
        tag = self.next_tag()
        tags.append(tag)
        n, k = r.randint(1, 2 * cfg.rows + 1), r.randint(1, 40)
        m = r.randint(1, 2 * cfg.cols + 1)
        big = r.randint(0x10000, 0xFFFFFFFF)
        ln, lk, lblocks = self.loaded or (n, k, False)
        code = r.choice(cfg.block_formats or (1,)) if lblocks else 0
        variants = {
            "LOAD_A N=0": (Op.LOAD_A, (0, k, 0)),
            "LOAD_A N>65535": (Op.LOAD_A, (big, k, 0)),
            "LOAD_A K=0": (Op.LOAD_A, (n, 0, 0)),
            "LOAD_A K>max_k": (Op.LOAD_A, (n, r.choice([cfg.max_k + 1, big]), 0)),
            "LOAD_A over act_depth": (Op.LOAD_A, (cfg.rows * (cfg.act_depth // k + 1)
                                                  - r.randrange(cfg.rows), k, 0)),
            "LOAD_A format": (Op.LOAD_A, (n, k, r.choice([2, 3, 0x80, big]))),
            "LOAD_A blocks K%32": (Op.LOAD_A, (n, r.choice([k, 33, 47, 100]) | 1, 1)),
            "GEMM N=0": (Op.GEMM, (0, lk, m | code << 24)),
            "GEMM K=0": (Op.GEMM, (ln, 0, m | code << 24)),
            "GEMM K>max_k": (Op.GEMM, (ln, r.choice([cfg.max_k + 1, big]), m | code << 24)),
            "GEMM M=0": (Op.GEMM, (ln, lk, code << 24)),
            "GEMM M>65535": (Op.GEMM, (ln, lk, r.randint(0x10000, 0xFFFFFF) | code << 24)),
            "GEMM format": (Op.GEMM, (ln, lk, m | r.choice([4, 5, 0x80, 0xFF, 1 - lblocks, 2,
                                                               3]) << 24)),
            "GEMM not loaded": (Op.GEMM, (ln + r.randint(1, 3), lk, m | code << 24)),
            "IDENTIFY with length": (Op.IDENTIFY, (0, 0, 0)),
            "LOAD_A length": (Op.LOAD_A, (ln, lk, int(lblocks))),
            "GEMM length": (Op.GEMM, (ln, lk, m | code << 24)),
        }
        name = r.choice(list(variants))
        op, args = variants[name]
        args = tuple(a & 0xFFFFFFFF for a in args)
        size = None
        if name.endswith(" length") and op != Op.IDENTIFY:
            size = payload_bytes(op, args, cfg)
        length, tail, how = self._length_and_payload(size)
        if name == "IDENTIFY with length" and not length:
            length, tail, how = self._length_and_payload()
        return pack_header(op, *args, tag=tag, length=length) + tail, f"{name} {args}, {how}"

    def unknown_opcode(self, tags):
        r = self.rng
        tag = self.next_tag()
        tags.append(tag)
        op = r.choice([0x00, 0x04, 0x10, 0x11, 0x7F, 0x80, 0x81, 0x82, 0x83, 0x90, 0x91, 0xFF,
                       r.randint(4, 0xFF), r.randint(4, 0xFF)])
        args = [r.getrandbits(32) for _ in range(3)]
        extra = {}
        if r.random() < 0.2:
            field = r.choice(["status", "info", "arg3"])
            extra[field] = r.randint(1, 0xFF if field == "status" else 0xFFFFFFFF)
        length, tail, how = self._length_and_payload()
        head = pack_header(op, *args, tag=tag, length=length, **extra)
        return head + tail, f"op 0x{op:02x} {extra or ''}, {how}"

    def _framed(self, op, args, payload, tag, crc_ok):
        word = crc_word(payload, self.lb)
        if not crc_ok:
            data, _ = self._flip(payload + word, 0, len(payload) + len(word))
        else:
            data = payload + word
        return pack_header(op, *args, tag=tag, length=len(payload)) + data

    def _shape(self, op, min_bytes=0):
        """Arguments of a small LOAD_A or GEMM (GEMM: mostly for the A meant to be loaded) and
        their payload's size, grown towards ``min_bytes`` (a GEMM's only so far)."""
        r, cfg = self.rng, self.cfg
        if op == Op.LOAD_A:
            blocks = self._use_blocks()
            n = r.randint(1, 2 * cfg.rows + 1)
            k = BLOCK * r.randint(1, 2) if blocks else r.randint(1, 48)
            while payload_bytes(op, (n, k, int(blocks)), cfg) < min_bytes:
                if k < (2 * BLOCK if blocks else cfg.max_k):
                    k = min(k + (BLOCK if blocks else 8), cfg.max_k)
                else:
                    n += 1
            args = (n, k, int(blocks))
        else:
            n, k, blocks = self._gemm_shape()
            code = r.choice(cfg.block_formats or (1, 2, 3)) if blocks else 0
            m = r.randint(1, 2 * cfg.cols + 1)
            while payload_bytes(op, (n, k, m | code << 24), cfg) < min_bytes and (
                    m < 4 * cfg.cols + 8):
                m += 1
            args = (n, k, m | code << 24)
        return args, payload_bytes(op, args, cfg)

    def magic_payload(self, tags):
        """A LOAD_A or GEMM whose payload is all MAGIC bytes, its CRC word right or not; or an
        unknown opcode's whole-word payload of MAGIC bytes (skipped by its length)."""
        r = self.rng
        tag = self.next_tag()
        tags.append(tag)
        crc_ok = r.random() < 0.5
        if r.random() < 0.25:
            payload = bytes([MAGIC]) * padded(r.randint(1, 160), self.lb)
            data = self._framed(0x7E, (1, 2, 3), payload, tag, crc_ok)
            return data, f"op 0x7e, {len(payload)} MAGIC bytes, CRC {'right' if crc_ok else 'bad'}"
        op = r.choice([Op.LOAD_A, Op.GEMM])
        args, size = self._shape(op)
        if op == Op.LOAD_A and crc_ok and (not args[2] or self.blocks):
            self.loaded = (args[0], args[1], bool(args[2]))
        data = self._framed(op, args, bytes([MAGIC]) * size, tag, crc_ok)
        return data, f"{op.name} {args} of MAGIC bytes, CRC {'right' if crc_ok else 'bad'}"

    def _inner_header(self):
        """A whole valid header to hide in a payload (a fresh tag): (bytes, description)."""
        r = self.rng
        tag = self.next_tag()
        what = r.choice(["IDENTIFY", "op", "LOAD_A", "GEMM"])
        if what == "IDENTIFY":
            return tag, pack_header(Op.IDENTIFY, tag=tag), "IDENTIFY"
        if what == "op":
            return tag, pack_header(0x7E, 1, tag=tag), "op 0x7e"
        op = Op.LOAD_A if what == "LOAD_A" else Op.GEMM
        args, size = self._shape(op)
        return tag, pack_header(op, *args, tag=tag, length=size), f"{op.name} {args}"

    def embedded_headers(self, tags):
        """A payload that holds whole valid headers on word boundaries (its CRC word right or
        not): of a LOAD_A or GEMM (taken by the router: no header in it may be answered), or of
        a refused header (skipped by its length: the same)."""
        r = self.rng
        tag = self.next_tag()
        tags.append(tag)
        crc_ok = r.random() < 0.6
        refused = r.random() < 0.3
        if refused:
            op, args = 0x7E, (1, 2, 3)
            size = padded(r.randint(32, 200), self.lb)
        else:
            op = r.choice([Op.LOAD_A, Op.GEMM])
            args, size = self._shape(op, min_bytes=2 * HEADER_BYTES)
            if size < 2 * HEADER_BYTES:
                op, args = 0x7E, (1, 2, 3)
                size = padded(r.randint(32, 200), self.lb)
        payload = bytearray(self._random(size))
        inner = []
        slots = list(range(0, size - HEADER_BYTES + 1, self.lb))
        for _ in range(r.randint(1, 3)):
            if not slots:
                break
            at = r.choice(slots)
            itag, head, what = self._inner_header()
            tags.append(itag)
            payload[at:at + HEADER_BYTES] = head
            inner.append(f"{what} tag {itag} at +{at}")
            slots = [s for s in slots if s + HEADER_BYTES <= at or s >= at + HEADER_BYTES]
        data = self._framed(op, args, bytes(payload), tag, crc_ok)
        return data, (f"{op_name(op)} {args} holding {', '.join(inner)}, "
                      f"CRC {'right' if crc_ok else 'bad'}")

    def garbage_between(self, tags):
        """Garbage, then a valid command right behind it."""
        r = self.rng
        how = r.choice(["zeros", "ones", "magic", "prefix", "random"])
        if how == "zeros":
            junk = bytes(self.lb * r.randint(1, 4))
        elif how == "ones":
            junk = b"\xff" * r.randint(1, 40)
        elif how == "magic":
            junk = bytes([MAGIC]) + self._random(r.randint(1, 40))
        elif how == "prefix":
            ptag = self.next_tag()
            tags.append(ptag)
            head = pack_header(r.choice([Op.IDENTIFY, Op.LOAD_A, Op.GEMM]), 1, 1, 1, tag=ptag)
            junk = head[:r.randint(1, HEADER_BYTES - 1)]
        else:
            junk = self._random(r.randint(1, 40), 0.5)
        junk += self._random(self._words(len(junk)) - len(junk))
        tag = self.next_tag()
        tags.append(tag)
        data, what = self.valid(tag)
        return junk + data, f"{len(junk)} bytes of {how}, then {what}"

    def _open_end(self, data):
        """Bytes past the end of ``data`` up to which a header in it may still be taking or
        skipping its payload (a whole header's worth at least, for a header being found); None
        if that is far (a huge skip: only the idle abort ends it)."""
        cfg, lb = self.cfg, self.lb
        most = HEADER_BYTES
        for pos, h in scan_headers(data):
            n, k, arg2 = h.args
            if pos % lb:
                continue
            ends = []
            if h.length and h.length % lb == 0:
                ends.append(h.length)
            if 1 <= n <= 0xFFFF and 1 <= k <= cfg.max_k and (
                    (h.op == Op.LOAD_A and arg2 <= 1 and -(-n // cfg.rows) * k <= cfg.act_depth)
                    or (h.op == Op.GEMM and 1 <= arg2 & 0xFFFFFF <= 0xFFFF and arg2 >> 24 < 4)):
                ends.append(payload_bytes(h.op, h.args, cfg))
            for size in ends:
                most = max(most, pos + HEADER_BYTES + size + crc_word_bytes(lb) - len(data))
        return most if most <= 4096 else None

    def burst(self, index):
        r, lb = self.rng, self.lb
        burst = Burst(index)
        for _ in range(r.randint(3, 14)):
            tags = []
            if r.random() < 0.3:
                tag = self.next_tag()
                data, what = self.valid(tag)
                burst.add("valid", data, [tag], what)
            else:
                kind = r.choice(KINDS)
                data, what = getattr(self, kind)(tags)
                burst.add(kind, data, tags, what)
            if len(burst.data) % lb and r.random() < 0.7:
                fill = self._random(-len(burst.data) % lb)
                burst.add("realign", fill, [], f"{len(fill)} bytes")
        burst.data += bytes(-len(burst.data) % lb)
        # Most bursts end with zero words that finish (or fill) whatever frame is still open, so
        # that only the others wait for the idle abort.
        close = self._open_end(bytes(burst.data))
        if close is not None and r.random() < 0.75:
            burst.add("close", bytes(padded(close, lb)), [], f"{padded(close, lb)} zero bytes")
        return burst


# --- the test --------------------------------------------------------------------------------

class Failure(Exception):
    pass


def replay_burst(hex_bytes, session):
    """A burst of the given bytes (from a failure's report), its headers' tags taken from it;
    the session's tags go on after the largest."""
    burst = Burst("replay")
    data = bytes.fromhex(hex_bytes)
    tags = sorted({h.tag for _, h in scan_headers(data)})
    burst.add("replay", data, tags, f"{len(data)} bytes")
    session.last_tag = max(tags, default=0) % Session.TAGS
    return burst


class Fuzzer:
    def __init__(self, dut, case):
        self.dut = dut
        self.case = case
        fields = json.loads(os.environ["SYSTOLICA_CONFIG"])
        cfg = self.cfg = Config(**{**fields, "formats": tuple(fields["formats"])})
        self.lb = cfg.link_bytes
        # The fence's zero word must not make the device report by half its buffer.
        assert 2 * self.lb < cfg.rx_bytes, cfg
        self.seed = case["seed"]
        self.bench = LinkBench(dut, self.lb, idle=case.get("idle", 0.0),
                               backpressure=case.get("backpressure", 0.0), seed=self.seed)
        self.session = self.bench.session = FuzzSession()
        self.session.clock = lambda: self.bench.cycle
        self.session.device_empty = lambda: bool(dut.rx_empty.value)
        self.rng = random.Random(self.seed)
        self.nrng = np.random.default_rng(self.seed)
        self.gen = Generator(cfg, self.rng, self.nrng, self.session.next_tag)
        self.loaded = None
        self.kinds = collections.Counter()
        self.statuses = collections.Counter()
        self.op_statuses = collections.Counter()
        self.figures = dict(bursts=0, valid_in_bursts=0, hangs=0, wrong_results=0, anomalies=0,
                            checked_gemms=0, headers_refused=0, payloads_refused=0,
                            results_voided=0, identify_in_bursts=0, burst_bytes=0,
                            fence_cycles=0)
        self.failures = []
        self.burst = None
        self.replies = []
        self.host_cpu = 0.0         # CPU seconds making bursts and judging replies

    # waiting

    async def _wait(self, done, what, limit=CHECKED_WAIT):
        start = self.bench.cycle
        while not done():
            if self.bench.cycle - start > limit:
                raise Failure(f"hang: {what} within {limit} cycles")
            await ClockCycles(self.dut.clk, POLL)
            self._collect()

    def _collect(self):
        while (frame := self.session.reply()) is not None:
            self.replies.append(frame)
            status = status_name(frame.status)
            self.statuses[status] += 1
            self.op_statuses[f"{op_name(frame.op)} {status}"] += 1

    def _sent_all(self):
        return not self.session.unsent and self.bench._holding is None

    async def _send_and_wait(self, data):
        self.session.send(data)
        await self._wait(self._sent_all, "the device takes the bytes sent")

    async def _identify(self, where):
        """IDENTIFY (the fence): every reply before its own belongs to what came before."""
        await self._wait(self._sent_all, f"the device takes the bytes sent {where}")
        at = self.session.credit.sent
        self.session.credit.identify_at.clear()     # every IDENTIFY before is answered
        tag = self.session.identify()
        await self._wait(lambda: any(f.tag == tag and f.op == Op.IDENTIFY for f in self.replies),
                         f"an IDENTIFY reply {where}")
        i = next(i for i, f in enumerate(self.replies) if f.tag == tag and f.op == Op.IDENTIFY)
        frame, before = self.replies[i], self.replies[:i]
        self.replies = self.replies[i + 1:]
        self._check_identify(frame, at)
        return before

    def _check_identify(self, frame, at):
        want = (Status.OK, len(self.cfg.identify_payload()), self.lb,
                (at + HEADER_BYTES) & 0xFFFFFFFF)
        got = (frame.status, *frame.args)
        if got != want or not frame.payload_ok or frame.config != self.cfg:
            self._wrong(f"IDENTIFY reply (tag {frame.tag}) is (status, bytes, link bytes, "
                        f"count) {got}, config {frame.config}, payload CRC "
                        f"{'right' if frame.payload_ok else 'bad'}; want {want}, {self.cfg}")

    # failures

    def _where(self):
        b = self.burst
        return (f"[{self.case.get('name')} seed {self.seed}, "
                + (f"burst {b.index}]" if b is not None else "before the first burst]"))

    def _record(self, kind, message):
        self.figures[kind] += 1
        text = f"{self._where()} {message}"
        self.dut._log.error(text)
        if len(self.failures) < MAX_REPORTED:
            entry = dict(kind=kind, message=text)
            if self.burst is not None:
                entry.update(frames=self.burst.describe(), burst_hex=bytes(self.burst.data).hex())
            self.failures.append(entry)

    def _wrong(self, message):
        self._record("wrong_results", message)

    def _anomaly(self, message):
        self._record("anomalies", message)

    # the check after every burst

    async def check(self):
        """A small LOAD_A and GEMM (int8, or block formats every other time) after the fence:
        answered OK and exactly."""
        cfg, r, gen = self.cfg, self.rng, self.gen
        blocks = self.gen.blocks and self.figures["bursts"] % 2 == 1
        n = r.randint(1, 2 * cfg.rows + 1)
        m = r.randint(1, 2 * cfg.cols + 1)
        tag_a, tag_g = self.session.next_tag(), self.session.next_tag()
        if blocks:
            k = BLOCK * r.randint(1, 2)
            xq, xd = random_activations(self.nrng, n, k)
            fmt = r.choice([f for f in FORMATS.values() if f.code in cfg.block_formats])
            raw = random_blocks(fmt, m, k // BLOCK, self.nrng)
            data = (load_a_blocks_command(xq, xd, cfg, tag=tag_a)
                    + gemm_blocks_command(raw, fmt, n, cfg, tag=tag_g))
            loaded = Loaded(n, k, True, (xq, xd))
            want = block_gemm_reference(xq, xd, raw, fmt)
            what = f"LOAD_A {n}x{k} blocks, GEMM {fmt.name} M={m}"
        else:
            k = r.randint(1, 40)
            a = self.nrng.integers(-128, 128, (n, k))
            w = self.nrng.integers(-128, 128, (k, m))
            data = load_a_command(a, cfg, tag=tag_a) + gemm_command(w, n, cfg, tag=tag_g)
            loaded = Loaded(n, k, False, a.astype(np.int8))
            want = gemm_reference(a, w)
            what = f"LOAD_A {n}x{k}, GEMM M={m}"
        self.session.send(data)
        await self._wait(lambda: any(f.tag == tag_g and f.op == Op.GEMM for f in self.replies),
                         f"the replies to the check after the burst ({what})")
        frames, self.replies = self.replies, []
        first, final = frames[0], frames[-1]
        self.loaded = gen.loaded = None
        if (first.op, first.status, first.tag, first.args[:2]) != (Op.LOAD_A, 0, tag_a, (n, k)):
            self._wrong(f"check {what}: LOAD_A reply {first}")
            return
        self.loaded, gen.loaded = loaded, (n, k, blocks)
        if (final.op, final.status, final.tag) != (Op.GEMM, 0, tag_g):
            self._wrong(f"check {what}: GEMM reply {final}")
            return
        out = self._results(frames[1:-1], tag_g, n, m, f"check {what}")
        if out is not None:
            self._compare(out, want, f"check {what}")

    def _results(self, frames, tag, n, m, what):
        """The RESULT frames of an OK GEMM as an (n, m) array, or None (recorded wrong)."""
        cfg = self.cfg
        out = np.zeros((n, m), dtype=np.int64)
        seen = np.zeros((n, m), dtype=np.int64)
        for f in frames:
            if f.op != Op.RESULT or f.status or f.tag != tag or not f.payload_ok:
                self._wrong(f"{what}: a reply among its RESULTs: {f}")
                return None
            i, j, block = result_tile(f, cfg)
            rows, cols = block.shape
            if i * cfg.rows + rows > n or j * cfg.cols + cols > m:
                self._wrong(f"{what}: RESULT {i},{j} of {rows}x{cols} outside {n}x{m}")
                return None
            out[i * cfg.rows:i * cfg.rows + rows, j * cfg.cols:j * cfg.cols + cols] = block
            seen[i * cfg.rows:i * cfg.rows + rows, j * cfg.cols:j * cfg.cols + cols] += 1
        if not (seen == 1).all():
            self._wrong(f"{what}: RESULT tiles cover the output {np.unique(seen).tolist()} "
                        "times")
            return None
        return out

    def _compare(self, out, want, what):
        if want.dtype == np.uint32:
            out = out.astype(np.uint32)
        else:
            want = want.astype(np.int64)
        self.figures["checked_gemms"] += 1
        if out.shape != want.shape or not np.array_equal(out, want):
            bad = np.argwhere(out != want)
            self._wrong(f"{what}: {len(bad)} results differ from the model, first at "
                        f"{bad[:3].tolist()}: got {out[tuple(bad[0])]}, want "
                        f"{want[tuple(bad[0])]}")

    # a burst and its judgement

    async def run_burst(self, index, burst=None):
        cpu = time.process_time()
        burst = self.burst = burst or self.gen.burst(index)
        for piece in burst.pieces:
            if piece.kind == "valid":
                self.figures["valid_in_bursts"] += 1
            elif piece.kind in KINDS:
                self.kinds[piece.kind] += 1
        self.figures["burst_bytes"] += len(burst.data)
        base = self.session.credit.sent + self.session.unsent
        for pos, h in scan_headers(bytes(burst.data)):
            if h.op == Op.IDENTIFY:
                self.session.credit.identify_at[h.tag] = base + pos
        self.host_cpu += time.process_time() - cpu
        self.replies = []
        await self._send_and_wait(bytes(burst.data))
        # The fence. The device reports the bytes it consumed (CREDIT) at once only when it waits
        # for a header with nothing buffered; a frame cut off by the burst's end is reported once
        # the idle abort has dropped it. So: every byte reported; then one zero word (idle fill,
        # or one more word of a frame still open, if the last report came from half the buffer
        # being consumed), reported too; then the IDENTIFY is read as a header.
        credit = self.session.credit
        fence = self.bench.cycle
        await self._wait(lambda: credit.acked >= credit.sent,
                         "the device reports every byte of the burst consumed")
        probe = bytes(self.lb)
        await self._send_and_wait(probe)
        await self._wait(lambda: credit.acked >= credit.sent,
                         "the device reports the zero word after the burst consumed")
        replies = await self._identify("after the burst")
        self.figures["fence_cycles"] += self.bench.cycle - fence
        self.figures["bursts"] += 1
        cpu = time.process_time()
        self.judge(burst, bytes(burst.data) + probe, replies, base)
        self.host_cpu += time.process_time() - cpu
        await self.check()

    def judge(self, burst, data, replies, base):
        """Check the replies to ``burst`` (see the module's docstring); ``data`` is what the
        device was sent from the burst's start to the fence's IDENTIFY."""
        lb = self.lb
        heads = scan_headers(data)
        by_tag = collections.defaultdict(list)
        for pos, h in heads:
            by_tag[h.tag].append((pos, h))
        groups = {}
        order = []
        for f in replies:
            if f.tag not in groups:
                groups[f.tag] = []
                order.append(f.tag)
            elif order[-1] != f.tag:
                self._anomaly(f"replies to tag {f.tag} interleaved with others: {f}")
            groups[f.tag].append(f)
        hunted_from = 0        # where the device hunts for a header after the last reply
        taker = ""             # the header whose payload reaches there
        answered = []          # (header position, end of what it took or skipped)
        last_pos = -1
        for tag in order:
            frames = groups[tag]
            final = frames[-1]
            piece = burst.piece_of(tag)
            meant = f"tag {tag} ({piece.kind}: {piece.what})" if piece else f"tag {tag}"
            ok_result = final.status == Status.OK and final.op in (Op.LOAD_A, Op.GEMM)
            places = [(p, h) for p, h in by_tag.get(tag, []) if p % lb == 0]
            if len(places) != 1:
                why = ("no header with a right CRC on a word boundary carries it"
                       if not places else f"{len(places)} headers carry it")
                say = self._wrong if ok_result else self._anomaly
                say(f"{meant}: {status_name(final.status)} reply {final} but {why}")
                continue
            pos, h = places[0]
            if pos < last_pos:
                self._anomaly(f"{meant}: answered after the header at {last_pos}, which comes "
                              f"later in the burst ({pos})")
            last_pos = pos
            if pos < hunted_from:
                self._anomaly(f"{meant}: {status_name(final.status)} reply to the header at {pos}, "
                              f"inside the payload (to {hunted_from}) of {taker}: a payload was "
                              "searched for headers")
            end = self._judge_one(meant, pos, h, frames, data, len(burst.data), base)
            answered.append((pos, end))
            if end > hunted_from:
                hunted_from = end
                taker = (f"the header at {pos} (tag {tag}, {op_name(h.op)}, length {h.length}, "
                         f"answered {status_name(final.status)})")
        # Every header on a word boundary outside what the answered ones took must be answered.
        done = {pos for pos, _ in answered}
        for pos, h in heads:
            if pos % lb or pos in done or any(p <= pos < e for p, e in answered):
                continue
            piece = burst.piece_of(h.tag)
            meant = f"tag {h.tag} ({piece.kind}: {piece.what})" if piece else f"tag {h.tag}"
            self._anomaly(f"{meant}: header at {pos} ({h}) got no reply, though no answered "
                          "header's payload covers it")

    def _judge_one(self, meant, pos, h, frames, data, cut, base):
        """Check one answered header's replies; returns the end of what the device took or
        skipped after it. The burst's bytes end at ``cut``; after them ``data`` holds the
        fence's zero word, which may or may not arrive before the idle abort."""
        cfg, lb = self.cfg, self.lb
        crc_bytes = crc_word_bytes(lb)
        final = frames[-1]
        results = frames[:-1]
        if final.op != h.op & ~REPLY:
            self._anomaly(f"{meant}: reply op 0x{final.op:02x} to a header of op 0x{h.op:02x}")
        v = verdict(h, cfg, self.loaded)
        status = Status(final.status) if final.status in set(Status) else final.status
        if v != ACCEPT:
            self.figures["headers_refused" if v else "identify_in_bursts"] += 1
            if results:
                self._anomaly(f"{meant}: {len(results)} replies before the last to a refused "
                              f"header: {results[0]}")
            if status != v:
                say = self._wrong if status == Status.OK and h.op in (Op.LOAD_A, Op.GEMM) \
                    else self._anomaly
                say(f"{meant}: header {h} answered {status!r}, its checks give {v!r} "
                    f"(loaded: {self._loaded_text()})")
            if h.op == Op.IDENTIFY and status == Status.OK:
                self._check_identify(final, base + pos)
            if h.length and h.length % lb == 0:
                return min(len(data), pos + HEADER_BYTES + h.length + crc_bytes)
            return pos + HEADER_BYTES
        size = payload_bytes(h.op, h.args, cfg)
        end = pos + HEADER_BYTES + size + crc_bytes
        body = data[pos + HEADER_BYTES:end]
        decoded = None
        if end > len(data):
            want, why = Status.ABORTED, "its payload was cut off by the burst's end"
        elif not payload_ok(body, lb):
            want, why = Status.BAD_CRC, "its payload's CRC word is wrong"
        else:
            if h.op == Op.LOAD_A:
                decoded = decode_load(body[:size], (h.arg0, h.arg1, h.arg2), cfg)
                bad_scale = h.arg2 and _inf_nan(decoded[1])
            else:
                decoded = decode_gemm(body[:size], h.args, cfg)
                bad_scale = h.arg2 >> 24 and block_scales_bad(decoded, h.arg2 >> 24)
            want, why = ((Status.BAD_SCALE, "it holds an inf or NaN scale") if bad_scale
                         else (Status.OK, "it arrived whole"))
        if end > cut and want != Status.ABORTED:
            allowed = (want, Status.ABORTED)      # ended by the zero word, or aborted before it
            why += " (or it was cut off by the burst's end)"
        else:
            allowed = (want,)
        if status not in allowed:
            say = self._wrong if status == Status.OK else self._anomaly
            say(f"{meant}: {op_name(h.op)} {h.args} at {pos} answered "
                f"{status!r}, want {want!r}: {why}")
        if status != Status.OK:
            self.figures["payloads_refused"] += 1
            if results:
                self.figures["results_voided"] += 1
        if h.op == Op.LOAD_A:
            if results:
                self._anomaly(f"{meant}: LOAD_A answered with {len(results)} extra replies")
            self.loaded = None
            if status == want == Status.OK and decoded is not None:
                if final.args[:2] != (h.arg0, h.arg1):
                    self._wrong(f"{meant}: LOAD_A reply {final} for N, K = {h.args[:2]}")
                self.loaded = Loaded(h.arg0, h.arg1, bool(h.arg2), decoded)
        elif status == want == Status.OK and decoded is not None:
            n, _, arg2 = h.args
            m, code = arg2 & 0xFFFF, arg2 >> 24
            out = self._results(results, final.tag, n, m, meant)
            if out is not None:
                ld = self.loaded
                if code:
                    want_out = block_gemm_reference(ld.data[0], ld.data[1], decoded, _fmt(code))
                else:
                    want_out = gemm_reference(ld.data, decoded)
                self._compare(out, want_out, f"{meant}: GEMM {h.args} at {pos}")
        return min(end, len(data))

    def _loaded_text(self):
        ld = self.loaded
        return "nothing" if ld is None else f"{ld.n}x{ld.k}{' blocks' if ld.blocks else ''}"

    def report(self, wall, cpu, cycles, error=None):
        figures = dict(
            self.figures, config=self.case.get("name"), seed=self.seed,
            frames_requested=self.case["frames"], frames_tried=sum(self.kinds.values()),
            kinds={k: self.kinds[k] for k in KINDS}, statuses=dict(self.statuses),
            op_statuses=dict(sorted(self.op_statuses.items())),
            max_host_stall=self.session.max_stall, abort_cycles=self.cfg.abort_cycles,
            cycles=cycles, wall_seconds=round(wall, 1), cpu_seconds=round(cpu, 1),
            host_cpu_seconds=round(self.host_cpu, 1), failures=self.failures, error=error)
        if "report" in self.case:
            with open(self.case["report"], "w") as f:
                json.dump(figures, f, indent=1)
        return figures


@cocotb.test()
async def fuzz(dut):
    """Bursts of malformed frames among valid commands; after each, the device must answer an
    IDENTIFY and a bit-exact LOAD_A + GEMM, and no damaged frame may get an OK reply. With
    ``replay`` in the case (a burst's bytes as hex), that burst first."""
    case = json.loads(os.environ["SYSTOLICA_CASE"])
    fz = Fuzzer(dut, case)
    self_check(fz.cfg, random.Random(fz.seed), np.random.default_rng(fz.seed))
    started, cpu = time.time(), time.process_time()
    error = None
    await fz.bench.start()
    try:
        await fz._identify("at the start")
        await fz.check()
        if case.get("replay"):
            await fz.run_burst(0, replay_burst(case["replay"], fz.session))
        index = 0
        while sum(fz.kinds.values()) < case["frames"]:
            await fz.run_burst(index)
            index += 1
    except Failure as exc:
        fz._record("hangs", str(exc))
        error = str(exc)
    figures = fz.report(time.time() - started, time.process_time() - cpu, fz.bench.cycle, error)
    summary = {k: figures[k] for k in ("config", "seed", "frames_tried", "bursts",
                                       "valid_in_bursts", "hangs", "wrong_results",
                                       "anomalies", "checked_gemms", "max_host_stall",
                                       "cycles", "wall_seconds", "cpu_seconds",
                                       "host_cpu_seconds")}
    dut._log.info(f"fuzz figures: {json.dumps(summary)}")
    dut._log.info(f"frames per kind: {json.dumps(figures['kinds'])}")
    dut._log.info(f"replies per status: {json.dumps(figures['statuses'])}")
    if fz.failures:
        first = fz.failures[0]
        raise AssertionError(
            f"{figures['hangs']} hangs, {figures['wrong_results']} wrong results, "
            f"{figures['anomalies']} anomalies; first: {first['message']}; frames of the burst: "
            f"{first.get('frames', '-')} (reproduce: the same seed and SYSTOLICA_FUZZ_FRAMES; "
            "the burst's bytes are in the report)")
