"""The header parser alone: a table of frames (good ones, and each kind of bad header) sent as
link words with random gaps; the replies it sends and the commands it hands the router, in
order. Garbage between frames is skipped up to the next magic byte."""

import numpy as np
import pytest
from streams import send, simulate

from systolica.config import Config
from systolica.protocol import MAGIC, REPLY, Op, Status, pack_header
from systolica.rtl.header_parser import HeaderParser

CONSUMED = 77     # what the link adapter reports as received (IDENTIFY's arg2)


def bad_check(header):
    return header[:3] + bytes([header[3] ^ 0x40]) + header[4:]


def frames(config):
    """(bytes sent, what comes back): a reply (op, status, arg0, arg1, arg2) or a command
    (load, size, k_last) followed by the LOAD_A reply once the router is done with it."""
    lb, ident = config.link_bytes, len(config.identify_payload())
    too_many_rows = config.act_depth // 8 * config.rows + 1          # > act_depth vectors at K=8
    return [
        (pack_header(Op.IDENTIFY), [(Op.IDENTIFY | REPLY, Status.OK, ident, lb, CONSUMED)]),
        (bytes(lb) + pack_header(Op.IDENTIFY), [(Op.IDENTIFY | REPLY, 0, ident, lb, CONSUMED)]),
        (bad_check(pack_header(Op.LOAD_A, 5, 8)), [(Op.LOAD_A | REPLY, Status.BAD_CHECK, 5, 0, 0)]),
        (pack_header(0x07, 9), [(0x07 | REPLY, Status.BAD_OPCODE, 9, 0, 0)]),
        (pack_header(Op.LOAD_A, 5, 0), [(Op.LOAD_A | REPLY, Status.BAD_LENGTH, 5, 0, 0)]),
        (pack_header(Op.LOAD_A, 5, config.max_k + 1),
         [(Op.LOAD_A | REPLY, Status.BAD_LENGTH, 5, 0, 0)]),
        (pack_header(Op.GEMM, 5, 8, 3), [(Op.GEMM | REPLY, Status.NOT_LOADED, 5, 0, 0)]),
        (pack_header(Op.LOAD_A, 5, 8), [(1, 5, 7), (Op.LOAD_A | REPLY, Status.OK, 5, 8, 0)]),
        (pack_header(Op.LOAD_A, too_many_rows, 8),
         [(Op.LOAD_A | REPLY, Status.BAD_LENGTH, too_many_rows, 0, 0)]),
        (pack_header(Op.GEMM, 5, 8, 3), [(0, 3, 7)]),      # the loaded A is still there
        (pack_header(Op.GEMM, 4, 8, 3), [(Op.GEMM | REPLY, Status.NOT_LOADED, 4, 0, 0)]),
        (pack_header(Op.GEMM, 5, 8, 0), [(Op.GEMM | REPLY, Status.BAD_LENGTH, 5, 0, 0)]),
    ]


def run_parser(config, table, seed):
    rng = np.random.default_rng(seed)
    dut = HeaderParser(config)
    lb = config.link_bytes
    data = b"".join(sent for sent, _ in table)
    words = [int.from_bytes(data[i:i + lb], "little") for i in range(0, len(data), lb)]
    got = []

    async def link(ctx):
        ctx.set(dut.consumed, CONSUMED)
        await send(ctx, dut.rx, words, rng, p_idle=0.3)
        for _ in range(200):
            await ctx.tick()

    async def replies(ctx):
        ctx.set(dut.reply.ready, 1)
        async for _, _, valid, r in ctx.tick().sample(dut.reply.valid, dut.reply.payload):
            if valid:
                got.append((r.op, r.status, r.arg0, r.arg1, r.arg2))

    async def router(ctx):
        # The payload router: takes a command, moves its (here absent) payload, says done.
        while True:
            ctx.set(dut.router.cmd.ready, 1)
            _, _, valid, cmd = await ctx.tick().sample(dut.router.cmd.valid,
                                                       dut.router.cmd.payload)
            if valid:
                got.append((cmd.load, cmd.size, cmd.k_last))
                ctx.set(dut.router.cmd.ready, 0)
                for _ in range(int(rng.integers(1, 10))):
                    await ctx.tick()
                ctx.set(dut.router.done, 1)
                await ctx.tick()
                ctx.set(dut.router.done, 0)

    simulate(dut, link, replies, router)
    return got


@pytest.mark.parametrize("link_bytes", [1, 4, 16])
def test_header_parser_answers_every_frame_of_the_table(link_bytes):
    config = Config(rows=2, cols=2, link_bytes=link_bytes, act_depth=64, max_k=32,
                    formats=("int8",), rx_fifo_words=64)
    table = frames(config)
    got = run_parser(config, table, seed=link_bytes)
    assert got == [want for _, wants in table for want in wants]
    assert MAGIC not in bytes(link_bytes)          # the garbage word cannot start a header
