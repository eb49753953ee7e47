# amaranth: UnusedElaboratable=no
"""The block unpacker alone, in Amaranth's simulator: GGUF weight blocks grouped and padded as on
the link, fed with random valid gaps and taken with random ready gaps (and once with both always
on, counting cycles), against `decode_blocks` on the same raw bytes."""


import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.sim import Simulator

from systolica.host.block_formats import FORMATS, decode_blocks
from systolica.protocol import BLOCK_BYTES, Format
from systolica.rtl.block_fields import block_layout
from systolica.rtl.block_unpacker import BlockUnpacker

ALL = (Format.Q8_0, Format.Q4_0, Format.Q4_1)
NAME = {f.code: name for name, f in FORMATS.items()}


def random_blocks(rng, fmt, n):
    """``n`` random raw blocks (n, block_bytes): random bytes, random binary16 scale patterns,
    about one in eight of them inf/NaN (exponent 31), the rest finite."""
    raw = rng.integers(0, 256, (n, BLOCK_BYTES[fmt]), dtype=np.uint8)
    scales = 2 if fmt == Format.Q4_1 else 1
    pats = rng.integers(0, 1 << 16, (n, scales))
    special = rng.random((n, scales)) < 0.12
    finite_31 = ~special & ((pats >> 10) & 31 == 31)
    pats = np.where(special, pats | 0x7C00, np.where(finite_31, pats & ~0x0400, pats))
    raw[:, 0:2 * scales] = pats.astype("<u2").view(np.uint8).reshape(n, 2 * scales)
    return raw


def expected_blocks(raw, fmt, cp):
    """The blocks the unpacker must emit for raw blocks (groups, cp, block_bytes), in order:
    ``(lane, d, m, q, bad_scale, group_last)``."""
    flat = raw.reshape(-1, raw.shape[-1])
    d, m, q = decode_blocks(flat, NAME[fmt])
    d, q = d[:, 0], q.reshape(len(flat), 32)
    m = np.zeros_like(d) if m is None else m[:, 0]
    bad = (((d >> 10) & 31) == 31) | (((m >> 10) & 31) == 31)
    return [(i % cp, int(d[i]), int(m[i]), tuple(int(v) for v in q[i]), int(bad[i]),
             int(i % cp == cp - 1)) for i in range(len(flat))]


def link_words(raw, link_bytes, rng):
    """Link words (ints, byte 0 in the low bits) of raw blocks (groups, cp, block_bytes): each
    group's blocks concatenated and padded to whole words. The padding is random garbage here
    (zeros on the real link) so that a pad byte taken for data shows."""
    words = []
    for group in raw:
        data = group.tobytes()
        data += rng.integers(0, 256, -len(data) % link_bytes, dtype=np.uint8).tobytes()
        words += [int.from_bytes(data[i:i + link_bytes], "little")
                  for i in range(0, len(data), link_bytes)]
    return words


def payload_decoder(cols):
    fields = {name: (f.offset, f.width) for name, f in block_layout(cols)}

    def decode(value):
        def get(name):
            off, width = fields[name]
            return (value >> off) & ((1 << width) - 1)
        qbits = get("q")
        q = tuple(((qbits >> (8 * i)) & 0xFF) - (((qbits >> (8 * i)) & 0x80) << 1)
                  for i in range(32))
        return (get("lane"), get("d"), get("m"), q, get("bad_scale"), get("group_last"))
    return decode


def make_runs(rng, formats, cols, link_bytes, groups):
    """One gappy run and one gap-free run per format: each ``(fmt, gaps, tiles)`` with tiles
    ``(C', words, expected blocks)``, C' = cols, a partial C' and 1 (just 1 when cols = 1)."""
    sizes = list(dict.fromkeys([cols, cols // 2 + 1, 1]))
    runs = []
    for gaps in (True, False):
        for fmt in formats:
            tiles = []
            for cp in (sizes if gaps else sizes[:2]):
                raw = random_blocks(rng, fmt, groups * cp).reshape(groups, cp, -1)
                tiles.append((cp, link_words(raw, link_bytes, rng), expected_blocks(raw, fmt, cp)))
            runs.append((fmt, gaps, tiles))
    return runs


def run_unpacker(link_bytes, cols, formats, groups, seed=0, gap_in=0.35, gap_out=0.35):
    """Simulates the runs of `make_runs` and checks every block, the stream rules at the output,
    and the throughput of the gap-free runs: for links narrower than a block, each tile's words
    taken on consecutive cycles; for links at least a block wide, its blocks. ``gap_in`` and
    ``gap_out`` are the chances of a cycle without valid / ready in the gappy runs."""
    rng = np.random.default_rng(seed)
    dut = BlockUnpacker(link_bytes, cols, formats)
    runs = make_runs(rng, formats, cols, link_bytes, groups)
    # (gap-free, tile number, format, block) in output order
    expected = []
    for fmt, gaps, tiles in runs:
        for _, _, blks in tiles:
            tile_no = len({e[1] for e in expected})
            expected += [(not gaps, tile_no, fmt, blk) for blk in blks]
    decode = payload_decoder(cols)
    got = []               # (cycle, block) of every block taken
    groups_seen = [0]      # group_last blocks seen valid at the output (taken or not)
    words_taken = []       # (gap-free, tile number, cycle) of every word taken
    n_words = sum(len(words) for _, _, tiles in runs for _, words, _ in tiles)
    budget = 4 * (n_words + len(expected)) + 200     # cycles; a hang fails instead

    def check_budget(cycle):
        assert cycle < budget, f"stalled: {len(got)} of {len(expected)} blocks after {cycle} cycles"

    async def producer(ctx):
        cycle, groups_before, blocks_before, tile_no = 0, 0, 0, 0

        async def tick():
            nonlocal cycle
            cycle += 1
            check_budget(cycle)
            return await ctx.tick().sample(dut.words.ready)

        for fmt, gaps, tiles in runs:
            while len(got) < blocks_before:     # a new GEMM (format) once all before is out
                await tick()
            ctx.set(dut.control.fmt, fmt)
            for cp, words, blks in tiles:
                # C' changes once the previous tile's last block has been emitted.
                while groups_seen[0] < groups_before:
                    await tick()
                ctx.set(dut.control.group_blocks, cp)
                for word in words:
                    while gaps and rng.random() < gap_in:
                        await tick()
                    ctx.set(dut.words.payload, word)
                    ctx.set(dut.words.valid, 1)
                    while not (await tick())[2]:
                        pass
                    ctx.set(dut.words.valid, 0)
                    words_taken.append((not gaps, tile_no, cycle))
                groups_before += len(blks) // cp
                blocks_before += len(blks)
                tile_no += 1

    async def consumer(ctx):
        counted = False    # the block now at the output was counted in groups_seen
        cycle, held = 0, None
        while len(got) < len(expected):
            cycle += 1
            check_budget(cycle)
            gaps = not expected[len(got)][0]
            ctx.set(dut.blocks.ready, not (gaps and rng.random() < gap_out))
            _, _, valid, ready, value = await ctx.tick().sample(
                dut.blocks.valid, dut.blocks.ready, dut.blocks.payload.as_value())
            if held is not None:    # a block not taken stays, unchanged
                assert valid and value == held, f"block changed while not taken, cycle {cycle}"
            held = value if valid and not ready else None
            if valid:
                blk = decode(value)
                if blk[5] and not counted:
                    groups_seen[0] += 1
                    counted = True
                if ready:
                    got.append((cycle, blk))
                    counted = False
        ctx.set(dut.blocks.ready, 1)
        for _ in range(3 * max(1, 40 // link_bytes)):     # nothing more comes out
            _, _, valid = await ctx.tick().sample(dut.blocks.valid)
            assert not valid

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()

    for i, ((*_, want), (_, have)) in enumerate(zip(expected, got, strict=True)):
        assert have == want, f"block {i}: got {have}, want {want}"
    steps = {}
    if link_bytes < min(BLOCK_BYTES.values()):
        for free, tile, cycle in words_taken:
            if free:
                steps.setdefault(tile, []).append(cycle)
    for (free, tile, fmt, _), (cycle, _) in zip(expected, got, strict=True):
        if free and link_bytes >= BLOCK_BYTES[fmt]:
            steps.setdefault(tile, []).append(cycle)
    for tile, cycles in steps.items():
        assert np.all(np.diff(cycles) == 1), f"tile {tile}: a bubble at the full rate: {cycles}"
    return steps


CASES = [(lb, cols, fmt) for lb in (1, 4, 8) for cols in (1, 3, 8) for fmt in ALL]


@pytest.mark.parametrize(("link_bytes", "cols", "fmt"), [
    *CASES, (16, 3, Format.Q4_0), (16, 8, Format.Q4_1), (32, 3, Format.Q4_0),
    (64, 8, Format.Q8_0)])
def test_single_format_matches_decode_blocks(link_bytes, cols, fmt):
    groups = 3 if link_bytes == 1 else 6
    steps = run_unpacker(link_bytes, cols, (fmt,), groups,
                         seed=link_bytes * 100 + cols * 10 + fmt)
    assert steps        # the throughput was checked


@pytest.mark.parametrize(("link_bytes", "cols"), [(1, 3), (4, 8), (8, 8), (16, 3), (64, 3)])
def test_all_formats_one_device(link_bytes, cols):
    """A device built for all three formats, the format switched between GEMMs; a slow consumer,
    so that the buffer (sized for Q8_0) fills up with the smaller blocks."""
    run_unpacker(link_bytes, cols, ALL, groups=4, seed=7 + link_bytes + cols, gap_out=0.6)


def test_block_bytes_match_host_formats():
    assert {f.code: f.block_bytes for f in FORMATS.values()} == BLOCK_BYTES


@pytest.mark.parametrize(("link_bytes", "cols", "formats"), [
    (64, 8, ALL), (32, 2, (Format.Q4_0,)), (1, 1, (Format.Q4_1, Format.Q8_0))])
def test_converts_to_rtlil(link_bytes, cols, formats):
    dut = BlockUnpacker(link_bytes, cols, formats)
    assert dut.buffer_bytes == max(BLOCK_BYTES[f] for f in formats) + link_bytes - 1
    assert "module" in rtlil.convert(dut)


@pytest.mark.parametrize(("link_bytes", "cols", "formats"), [
    (3, 4, ALL), (128, 4, ALL), (8, 0, ALL), (8, 4, ()), (8, 4, (Format.INT8,))])
def test_rejects_bad_parameters(link_bytes, cols, formats):
    with pytest.raises(ValueError, match="must be"):
        BlockUnpacker(link_bytes, cols, formats)
