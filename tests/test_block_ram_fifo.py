# amaranth: UnusedElaboratable=no
"""The receive FIFO (rtl/block_ram_fifo.py) in Amaranth's simulator: every word comes out once,
in order, under random idle and backpressure; one word a cycle when neither side waits; the
write side stops at ``depth`` words in the RAM; ``empty`` is exact."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from systolica.rtl.block_ram_fifo import QUEUE_WORDS, BlockRamFifo


def _run(dut, words, p_valid, p_ready, seed, cycles):
    """Drive ``words`` in and drain under random valid/ready; returns (out, trace) where trace
    is per cycle (w.ready, empty, number of words written minus read so far)."""
    rng = np.random.default_rng(seed)
    out, trace = [], []

    async def testbench(ctx):
        sent = 0
        for _ in range(cycles):
            valid = sent < len(words) and rng.random() < p_valid
            ready = rng.random() < p_ready
            ctx.set(dut.w.valid, valid)
            ctx.set(dut.w.payload, words[sent] if sent < len(words) else 0)
            ctx.set(dut.r.ready, ready)
            w_ready, r_valid = ctx.get(dut.w.ready), ctx.get(dut.r.valid)
            trace.append((w_ready, ctx.get(dut.empty), sent - len(out)))
            if r_valid and ready:
                out.append(ctx.get(dut.r.payload))
            if valid and w_ready:
                sent += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return out, trace


@pytest.mark.parametrize(("depth", "p_valid", "p_ready"), [
    (16, 1.0, 1.0), (16, 0.5, 0.5), (10, 0.9, 0.3), (64, 0.3, 0.9), (2, 1.0, 0.5)])
def test_every_word_once_in_order(depth, p_valid, p_ready):
    words = list(range(1, 200))
    dut = BlockRamFifo(8, depth)
    out, trace = _run(dut, words, p_valid, p_ready, depth, 3000)
    assert out == words
    for _, empty, inside in trace:
        assert bool(empty) == (inside == 0)
        assert inside <= depth + QUEUE_WORDS


def test_one_word_a_cycle():
    words = list(range(100))
    dut = BlockRamFifo(8, 16)
    out, trace = _run(dut, words, 1.0, 1.0, 0, 106)
    # The first word is out three cycles after it went in, then one every cycle.
    assert out == words
    assert all(w_ready for w_ready, _, _ in trace[:100])


def test_write_side_stops_when_the_ram_is_full():
    dut = BlockRamFifo(8, 8)
    out, trace = _run(dut, list(range(50)), 1.0, 0.0, 0, 40)
    assert out == []
    # The RAM takes 8 words and the queue the first 4 of them: 12 inside, then no room.
    assert trace[-1][2] == 8 + QUEUE_WORDS and trace[-1][0] == 0


def test_depth_must_be_at_least_two():
    with pytest.raises(ValueError, match="depth must be at least 2"):
        BlockRamFifo(8, 1)
