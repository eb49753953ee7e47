"""Bursts for the fuzzer (tests/cocotb_fuzz.py): a burst's bytes and its pieces, and the valid
commands (and the random pieces of damaged ones) that bursts are made of."""

import dataclasses

from block_data import random_activations, random_blocks
from fuzz_model import scan_headers

from systolica.host.block_formats import BLOCK, FORMATS
from systolica.host.frames import (
    gemm_blocks_command,
    gemm_command,
    identify_command,
    load_a_blocks_command,
    load_a_command,
)
from systolica.host.session import Session
from systolica.protocol import MAGIC, Op, crc_word, padded

__all__ = ["Burst", "FrameMaker", "Piece", "replay_burst"]


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



def replay_burst(hex_bytes, session):
    """A burst of the given bytes (from a failure's report), its headers' tags taken from it;
    the session's tags go on after the largest."""
    burst = Burst("replay")
    data = bytes.fromhex(hex_bytes)
    tags = sorted({h.tag for _, h in scan_headers(data)})
    burst.add("replay", data, tags, f"{len(data)} bytes")
    session.last_tag = max(tags, default=0) % Session.TAGS
    return burst



class FrameMaker:
    """Makes valid commands (seeded), and the random pieces that damaged ones are made of."""

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
