"""Run-time selects: `mux_tree` and `byte_select`, every index, against Python, at the widths
the design uses (the boards' words of up to 64 bits keep ``word_select``; wider words go through
32-bit pieces)."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from systolica.rtl.mux_tree import byte_select, mux_tree


def _run(width, index_bits, build, expect, indices):
    word = Signal(width)
    index = Signal(index_bits)
    m = Module()
    out = Signal(8)
    m.d.comb += out.eq(build(word, index))
    rng = random.Random(width)
    values = [rng.getrandbits(width) for _ in range(3)] + [(1 << width) - 1]
    mismatches = []

    async def bench(ctx):
        for value in values:
            ctx.set(word, value)
            for i in indices:
                ctx.set(index, i)
                if ctx.get(out) != expect(value, i):
                    mismatches.append((value, i, ctx.get(out)))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not mismatches, mismatches[:3]


@pytest.mark.parametrize("width", [8, 32, 64, 128, 256])
def test_byte_select_picks_every_byte(width):
    nbytes = width // 8
    bits = max((nbytes - 1).bit_length(), 1)
    _run(width, bits, byte_select, lambda value, i: (value >> (8 * i)) & 0xFF, range(nbytes))


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_mux_tree_picks_every_value_and_clamps_past_the_end(count):
    bits = max((count - 1).bit_length(), 1)      # indices count .. 2**bits - 1 are past the end
    _run(8 * count, bits,
         lambda word, sel: mux_tree(sel, [word[8 * i:8 * i + 8] for i in range(count)]),
         lambda value, i: (value >> (8 * min(i, count - 1))) & 0xFF, range(1 << bits))


def test_byte_select_rejects_ragged_wide_words():
    with pytest.raises(ValueError, match="whole 32-bit pieces, not 72 bits"):
        byte_select(Signal(72), Signal(4))
