# amaranth: UnusedElaboratable=no
"""The engine's buffers (rtl/buffer_memory.py) in Amaranth's simulator: whole or in registered
pieces, every word reads back what was written, `latency` cycles after its address."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from systolica.rtl.buffer_memory import BufferMemory


@pytest.mark.parametrize(("depth", "piece_depth"), [(40, 0), (40, 16), (32, 16), (12, 16),
                                                    (100, 8)])
def test_reads_back_what_was_written(depth, piece_depth):
    dut = BufferMemory(16, depth, piece_depth=piece_depth)
    assert dut.latency == (2 if piece_depth else 1)
    rng = np.random.default_rng(depth + piece_depth)
    words = [int(w) for w in rng.integers(0, 1 << 16, depth)]
    reads = [int(a) for a in rng.integers(0, depth, 3 * depth)]
    got = []

    async def testbench(ctx):
        for addr in rng.permutation(depth):
            ctx.set(dut.w_addr, int(addr))
            ctx.set(dut.w_data, words[addr])
            ctx.set(dut.w_en, 1)
            await ctx.tick()
        ctx.set(dut.w_en, 0)
        # One read address a cycle; each word shows `latency` cycles later.
        for cycle in range(len(reads) + dut.latency):
            if cycle < len(reads):
                ctx.set(dut.r_addr, reads[cycle])
            await ctx.tick()
            if cycle + 1 >= dut.latency:
                got.append(ctx.get(dut.r_data))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert got[:len(reads)] == [words[a] for a in reads]


def test_piece_depth_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="piece_depth must be 0 or a power of two"):
        BufferMemory(8, 64, piece_depth=24)
