"""The activation buffer alone: a LOAD_A's vectors, arriving with random gaps, read back from
their addresses; in 32-blocks, each block's scales and the sums of its 32 values per row."""

import numpy as np
import pytest
from streams import send, simulate

from systolica.config import Config
from systolica.rtl.activation_buffer import ActivationBuffer


def run_buffer(config, vectors, scales, seed):
    """Load ``vectors`` (V x rows; with ``scales``, one scale vector before every 32), then
    read every address and (in blocks) every block entry."""
    rng = np.random.default_rng(seed)
    dut = ActivationBuffer(config)
    got = {"vectors": [], "blocks": []}

    async def bench(ctx):
        blocks = scales is not None
        ctx.set(dut.load_start, 1)
        if blocks:
            ctx.set(dut.act_blocks, 1)
        await ctx.tick()
        ctx.set(dut.load_start, 0)
        for v, vector in enumerate(vectors):
            if blocks and v % 32 == 0:
                await send(ctx, dut.act_scale, [[int(s) for s in scales[v // 32]]], rng, 0.5)
            await send(ctx, dut.act, [[int(x) for x in vector]], rng, 0.5)
        for addr in range(len(vectors) + dut.latency):
            ctx.set(dut.r_addr, min(addr, len(vectors) - 1))
            await ctx.tick()
            if addr + 1 >= dut.latency:
                got["vectors"].append([ctx.get(dut.r_data[r]) for r in range(config.rows)])
        if blocks:
            for b in range(len(vectors) // 32):
                ctx.set(dut.block_addr, b)
                await ctx.tick()
                got["blocks"].append([(e.dx, e.sum) for e in ctx.get(dut.block_data)])

    simulate(dut, bench)
    got["vectors"] = got["vectors"][:len(vectors)]
    return got


CONFIGS = {
    "int8": Config(rows=3, cols=2, link_bytes=1, act_depth=128, max_k=32, formats=("int8",),
                   rx_fifo_words=64),
    "int8-pieces": Config(rows=2, cols=2, link_bytes=1, act_depth=128, max_k=32,
                          formats=("int8",), rx_fifo_words=64, buffer_piece_depth=32),
    "blocks": Config(rows=4, cols=2, link_bytes=1, act_depth=128, max_k=32, rx_fifo_words=64),
}


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("count", [32, 96])
def test_activation_buffer_reads_back_each_vector_and_block(name, count):
    config = CONFIGS[name]
    rng = np.random.default_rng(count)
    vectors = rng.integers(-128, 128, size=(count, config.rows))
    blocks = bool(config.block_formats)
    scales = rng.integers(0, 0x7C00, size=(count // 32, config.rows)) if blocks else None
    got = run_buffer(config, vectors, scales, seed=count)
    assert np.array_equal(np.array(got["vectors"]), vectors)
    if blocks:
        sums = vectors.reshape(-1, 32, config.rows).sum(axis=1)
        want = [[(int(scales[b, r]), int(sums[b, r])) for r in range(config.rows)]
                for b in range(count // 32)]
        assert got["blocks"] == want
