"""The header parser alone: a table of frames (good ones, and each kind of bad header) sent as
link words with random gaps; the replies it sends and the commands it hands the router, in
order. A candidate whose CRC is wrong gets no reply, and a header inside it is still found; a
rejected header's payload is skipped by its length, even when it holds a valid header."""

import numpy as np
import pytest
from streams import send, simulate

from systolica.config import Config
from systolica.protocol import (
    ARGMAX,
    DRAM_WORD_BYTES,
    MAGIC,
    MAX_WRITE_DRAM,
    PAIR_SUM,
    REPLY,
    Format,
    Op,
    Status,
    crc_word,
    pack_header,
    pad_to_words,
)
from systolica.rtl.header_parser import HeaderParser

CONSUMED = 77     # what the link adapter reports as received (IDENTIFY's arg2)
LINE_ERRORS = (3, 250)   # the line's framing errors and overruns (IDENTIFY's info)
BAD_CRC_N = 6     # the test's router says the payload of a LOAD_A of this N failed its CRC


def flipped(header, bit):
    raw = bytearray(header)
    raw[bit // 8] ^= 1 << bit % 8
    return bytes(raw)


def frames(config):
    """(bytes sent, what comes back): a reply (op, status, tag, arg0, arg1, arg2) or a command
    (load, size, k_last) followed by the LOAD_A reply once the router is done with it."""
    lb, ident = config.link_bytes, len(config.identify_payload())
    too_many_rows = config.act_depth // 8 * config.rows + 1          # > act_depth vectors at K=8
    identify = pack_header(Op.IDENTIFY, tag=3)
    hidden = pad_to_words(identify, lb)     # a valid header, as a rejected command's payload
    skipped = hidden + crc_word(hidden, lb)
    rows = [
        (identify, [(Op.IDENTIFY | REPLY, Status.OK, 3, ident, lb, CONSUMED)]),
        (bytes(lb) + pack_header(Op.IDENTIFY, tag=4), [(Op.IDENTIFY | REPLY, 0, 4, ident, lb,
                                                        CONSUMED)]),
        # A wrong CRC (any bit): dropped without a reply.
        (flipped(pack_header(Op.LOAD_A, 5, 8, tag=9), 3), []),
        (flipped(pack_header(Op.IDENTIFY, tag=9), 255), []),
        (flipped(pack_header(Op.IDENTIFY, tag=9), 8 * 17 + 2), []),
        # A header inside a failed candidate (a lone MAGIC word, half a header) is found.
        (pad_to_words(bytes([MAGIC]), lb) + pack_header(Op.IDENTIFY, tag=10),
         [(Op.IDENTIFY | REPLY, 0, 10, ident, lb, CONSUMED)]),
        (pack_header(Op.GEMM, 1, 2, 3)[:16] + pack_header(Op.IDENTIFY, tag=11),
         [(Op.IDENTIFY | REPLY, 0, 11, ident, lb, CONSUMED)]),
        (pack_header(Op.LOAD_A, 5, 8, status=1, tag=12),
         [(Op.LOAD_A | REPLY, Status.BAD_CHECK, 12, 5, 0, 0)]),
        (pack_header(Op.LOAD_A, 5, 8, info=1, tag=13),
         [(Op.LOAD_A | REPLY, Status.BAD_CHECK, 13, 5, 0, 0)]),
        (pack_header(0x07, 9, tag=14), [(0x07 | REPLY, Status.BAD_OPCODE, 14, 9, 0, 0)]),
        # A rejected command's payload is skipped by its length: the header in it is not seen.
        (pack_header(0x07, 9, tag=15, length=len(hidden)) + skipped,
         [(0x07 | REPLY, Status.BAD_OPCODE, 15, 9, 0, 0)]),
        (pack_header(Op.GEMM, 5, 8, 3, tag=16, length=len(hidden)) + skipped,
         [(Op.GEMM | REPLY, Status.NOT_LOADED, 16, 5, 0, 0)]),
        (pack_header(Op.LOAD_A, 5, 0, tag=17), [(Op.LOAD_A | REPLY, Status.BAD_LENGTH, 17, 5, 0,
                                                 0)]),
        (pack_header(Op.LOAD_A, 5, config.max_k + 1, tag=18),
         [(Op.LOAD_A | REPLY, Status.BAD_LENGTH, 18, 5, 0, 0)]),
        (pack_header(Op.GEMM, 5, 8, 3, tag=19), [(Op.GEMM | REPLY, Status.NOT_LOADED, 19, 5, 0,
                                                  0)]),
        (pack_header(Op.LOAD_A, 5, 8, tag=20), [(1, 5, 7), (Op.LOAD_A | REPLY, Status.OK, 20, 5,
                                                           8, 0)]),
        (pack_header(Op.LOAD_A, too_many_rows, 8, tag=21),
         [(Op.LOAD_A | REPLY, Status.BAD_LENGTH, 21, too_many_rows, 0, 0)]),
        (pack_header(Op.GEMM, 5, 8, 3, tag=22), [(0, 3, 7)]),      # the loaded A is still there
        (pack_header(Op.GEMM, 4, 8, 3, tag=23), [(Op.GEMM | REPLY, Status.NOT_LOADED, 23, 4, 0,
                                                  0)]),
        (pack_header(Op.GEMM, 5, 8, 0, tag=24), [(Op.GEMM | REPLY, Status.BAD_LENGTH, 24, 5, 0,
                                                  0)]),
        # A LOAD_A whose payload fails its CRC loads nothing.
        (pack_header(Op.LOAD_A, BAD_CRC_N, 8, tag=25),
         [(1, BAD_CRC_N, 7), (Op.LOAD_A | REPLY, Status.BAD_CRC, 25, BAD_CRC_N, 0, 0)]),
        (pack_header(Op.GEMM, BAD_CRC_N, 8, 3, tag=26),
         [(Op.GEMM | REPLY, Status.NOT_LOADED, 26, BAD_CRC_N, 0, 0)]),
    ]
    # The largest whole-word length is skipped whole (on a 1-byte link its word count and the CRC
    # word's 4 overflowed 32 bits, and the IDENTIFY behind it was answered): nothing after it
    # is answered (the table ends here for this row; the idle abort would end the skip).
    last = (pack_header(0x07, 9, tag=29, length=2**32 - lb) + bytes(3 * lb)
            + pack_header(Op.IDENTIFY, tag=30), [(0x07 | REPLY, Status.BAD_OPCODE, 29, 9, 0, 0)])
    if lb > 1:
        # A length that is not whole words is not skipped: the header after it is found.
        rows.append((pack_header(0x07, 9, tag=27, length=1) + pack_header(Op.IDENTIFY, tag=28),
                     [(0x07 | REPLY, Status.BAD_OPCODE, 27, 9, 0, 0),
                      (Op.IDENTIFY | REPLY, 0, 28, ident, lb, CONSUMED)]))
    rows.append(last)
    return rows


def run_parser(config, table, seed):
    rng = np.random.default_rng(seed)
    dut = HeaderParser(config)
    lb = config.link_bytes
    data = b"".join(sent for sent, _ in table)
    words = [int.from_bytes(data[i:i + lb], "little") for i in range(0, len(data), lb)]
    got, infos = [], []

    async def link(ctx):
        ctx.set(dut.consumed, CONSUMED)
        ctx.set(dut.line_errors.framing, LINE_ERRORS[0])
        ctx.set(dut.line_errors.overruns, LINE_ERRORS[1])
        await send(ctx, dut.rx, words, rng, p_idle=0.3)
        for _ in range(400):
            await ctx.tick()

    async def replies(ctx):
        ctx.set(dut.reply.ready, 1)
        async for _, _, valid, r in ctx.tick().sample(dut.reply.valid, dut.reply.payload):
            if valid:
                got.append((r.op, r.status, r.tag, r.arg0, r.arg1, r.arg2))
                infos.append(r.info)

    async def router(ctx):
        # The payload router: takes a command, moves its (here absent) payload, says done.
        while True:
            ctx.set(dut.router.cmd.ready, 1)
            _, _, valid, cmd = await ctx.tick().sample(dut.router.cmd.valid,
                                                       dut.router.cmd.payload)
            if valid:
                store = config.dram_mib and cmd.store
                if "pair" in dut.signature.members and not cmd.load and not store:
                    got.append(("pair", ctx.get(dut.pair), ctx.get(dut.argmax)))
                got.append(("store", cmd.words) if store else (cmd.load, cmd.size, cmd.k_last))
                ctx.set(dut.router.cmd.ready, 0)
                ctx.set(dut.router.bad_crc, 0)       # held from done until the next command
                for _ in range(int(rng.integers(1, 10))):
                    await ctx.tick()
                ctx.set(dut.router.done, 1)
                ctx.set(dut.router.bad_crc, cmd.words + 1 == BAD_CRC_N if store
                        else cmd.load and cmd.size == BAD_CRC_N)
                await ctx.tick()
                ctx.set(dut.router.done, 0)

    async def dram(ctx):
        # The DRAM engines: take every request at once and are never busy.
        ctx.set(dut.dram_ready, 1)
        ctx.set(dut.dram_write.ready, 1)
        ctx.set(dut.dram_read.ready, 1)
        async for _, _, w_valid, w, r_valid, r in ctx.tick().sample(
                dut.dram_write.valid, dut.dram_write.payload,
                dut.dram_read.valid, dut.dram_read.payload):
            if w_valid:
                got.append(("write", w.addr, w.count))
            if r_valid:
                got.append(("read", r.addr, r.count))

    benches = (link, replies, router, dram) if config.dram_mib else (link, replies, router)
    simulate(dut, *benches)
    return got, infos


@pytest.mark.parametrize("link_bytes", [1, 4, 16])
def test_header_parser_answers_every_frame_of_the_table(link_bytes):
    config = Config(rows=2, cols=2, link_bytes=link_bytes, act_depth=64, max_k=32,
                    formats=("int8",), rx_fifo_words=64)
    table = frames(config)
    got, infos = run_parser(config, table, seed=link_bytes)
    assert got == [want for _, wants in table for want in wants]
    # IDENTIFY's reply, and only it, reports the line's error counts.
    identify_ok = (Op.IDENTIFY | REPLY, Status.OK)
    line = LINE_ERRORS[0] | LINE_ERRORS[1] << 8
    replies = [r for r in got if len(r) == 6]
    assert infos == [line if r[:2] == identify_ok else 0 for r in replies]
    assert line in infos
    assert MAGIC not in bytes(link_bytes)          # the garbage word cannot start a header


def dram_frames(config):
    """The DRAM commands' table (a device with ``config.dram_mib`` of DRAM and a 16-byte link):
    the requests the engines get, the commands the router gets, the replies."""
    lb, size = config.link_bytes, config.dram_mib << 20
    w = DRAM_WORD_BYTES
    payload = bytes(range(3 * lb))
    stored = payload + crc_word(payload, lb)
    load = pack_header(Op.LOAD_A, 5, 8, tag=1)
    return [
        (pack_header(Op.WRITE_DRAM, 5 * w, tag=2, length=len(payload)) + stored,
         [("write", 5, 3), ("store", 2), (Op.WRITE_DRAM | REPLY, Status.OK, 2, 5 * w, 0, 0)]),
        # The last bytes of the DRAM (the longest payload, 2**16 words, is written end to end
        # in tests/test_dram_gemm.py: here it would take a minute).
        (pack_header(Op.WRITE_DRAM, size - len(payload), tag=3, length=len(payload)) + stored,
         [("write", (size - len(payload)) // w, 3), ("store", 2),
          (Op.WRITE_DRAM | REPLY, Status.OK, 3, size - len(payload), 0, 0)]),
        # Out of range, misaligned or too long: refused, the payload skipped by its length.
        *((pack_header(Op.WRITE_DRAM, addr, tag=tag, length=length)
           + bytes(length) + crc_word(bytes(length), lb),
           [(Op.WRITE_DRAM | REPLY, Status.BAD_LENGTH, tag, addr, 0, 0)])
          for tag, addr, length in ((4, size - 2 * lb, 3 * lb), (5, 8, lb))),
        (pack_header(Op.WRITE_DRAM, 0, 1, tag=7), [(Op.WRITE_DRAM | REPLY, Status.BAD_CHECK, 7,
                                                    0, 0, 0)]),
        (load, [(1, 5, 7), (Op.LOAD_A | REPLY, Status.OK, 1, 5, 8, 0)]),
        # GEMM_DRAM: the stored payload and its CRC word are read; the router gets a GEMM.
        (pack_header(Op.GEMM_DRAM, 5, 8, 3, tag=8, info=3 * lb, arg3=7 * w),
         [("read", 7, 3 + lb // w), (0, 3, 7)]),
        (pack_header(Op.GEMM_DRAM, 5, 8, 3, tag=9, info=size - 2 * w, arg3=w),
         [("read", 1, size // w - 2 + lb // w), (0, 3, 7)]),
        *((pack_header(Op.GEMM_DRAM, 5, 8, 3, tag=tag, info=info, arg3=addr),
           [(Op.GEMM_DRAM | REPLY, Status.BAD_LENGTH, tag, 5, 0, 0)])
          for tag, addr, info in ((10, 0, 0), (11, 8, lb), (12, 0, 4), (13, w, size - w))),
        (pack_header(Op.GEMM_DRAM, 5, 8, 3, tag=14, info=lb, arg3=0, length=lb) + bytes(lb)
         + crc_word(bytes(lb), lb), [(Op.GEMM_DRAM | REPLY, Status.BAD_LENGTH, 14, 5, 0, 0)]),
        (pack_header(Op.GEMM_DRAM, 4, 8, 3, tag=15, info=lb, arg3=0),
         [(Op.GEMM_DRAM | REPLY, Status.NOT_LOADED, 15, 4, 0, 0)]),
        # GEMM carries no address; a device without DRAM knows neither command.
        (pack_header(Op.GEMM, 5, 8, 3, tag=16, arg3=w), [(Op.GEMM | REPLY, Status.BAD_CHECK, 16,
                                                          5, 0, 0)]),
        (pack_header(Op.GEMM, 5, 8, 3, tag=17), [(0, 3, 7)]),
        # DRAM_CHECK: the bytes and their CRC word are read; the router checks them.
        (pack_header(Op.DRAM_CHECK, 7 * w, 3 * lb, tag=18),
         [("read", 7, 3 + lb // w), ("store", 2), (Op.DRAM_CHECK | REPLY, Status.OK, 18, 7 * w,
                                                   0, 0)]),
        (pack_header(Op.DRAM_CHECK, 0, BAD_CRC_N * lb, tag=19),
         [("read", 0, BAD_CRC_N + lb // w), ("store", BAD_CRC_N - 1),
          (Op.DRAM_CHECK | REPLY, Status.BAD_CRC, 19, 0, 0, 0)]),
        *((pack_header(Op.DRAM_CHECK, addr, length, tag=tag),
           [(Op.DRAM_CHECK | REPLY, Status.BAD_LENGTH, tag, addr, 0, 0)])
          for tag, addr, length in ((20, 8, lb), (21, 0, 0), (22, size - lb, lb))),
        (pack_header(Op.DRAM_CHECK, 0, lb, 1, tag=23),
         [(Op.DRAM_CHECK | REPLY, Status.BAD_CHECK, 23, 0, 0, 0)]),
        # Too long: refused (last: the parser then skips its megabyte, not sent here).
        (pack_header(Op.WRITE_DRAM, 0, tag=6, length=MAX_WRITE_DRAM + lb),
         [(Op.WRITE_DRAM | REPLY, Status.BAD_LENGTH, 6, 0, 0, 0)]),
    ]


def test_header_parser_answers_the_dram_commands():
    config = Config(rows=2, cols=2, link_bytes=16, act_depth=64, max_k=32, formats=("int8",),
                    rx_fifo_words=64, dram_mib=2)
    table = dram_frames(config)
    got, _ = run_parser(config, table, seed=5)
    assert got == [want for _, wants in table for want in wants]


def test_a_device_without_dram_knows_no_dram_command():
    config = Config(rows=2, cols=2, link_bytes=16, act_depth=64, max_k=32, formats=("int8",),
                    rx_fifo_words=64)
    table = [(pack_header(op, 16, tag=3, length=16) + bytes(16) + crc_word(bytes(16), 16),
              [(op | REPLY, Status.BAD_OPCODE, 3, 16, 0, 0)])
             for op in (Op.WRITE_DRAM, Op.GEMM_DRAM)]
    got, _ = run_parser(config, table, seed=6)
    assert got == [want for _, wants in table for want in wants]


def test_header_parser_takes_pair_sums_and_argmax_only_where_the_protocol_allows_them():
    """`protocol.PAIR_SUM` on a block GEMM_DRAM of even N sets ``pair``, `protocol.ARGMAX` on
    one of one result row (N = 1, or 2 with pair sums) ``argmax``; on a GEMM, on int8 weights,
    with N odd (pair sums) or more than one result row (argmax), or another bit of arg2's third
    byte set, BAD_LENGTH."""
    config = Config(rows=2, cols=2, link_bytes=16, act_depth=64, max_k=32,
                    formats=("int8", "q4_1"), rx_fifo_words=64, dram_mib=2)
    lb, words = config.link_bytes, 1 + config.link_bytes // DRAM_WORD_BYTES
    q4_1 = 3 | Format.Q4_1 << 24

    def gemm_dram(n, arg2, tag):
        return pack_header(Op.GEMM_DRAM, n, 32, arg2, tag=tag, info=lb, arg3=0)

    def refused(op, n, tag):
        return [(op | REPLY, Status.BAD_LENGTH, tag, n, 0, 0)]

    table = [
        (pack_header(Op.LOAD_A, 4, 32, 1, tag=1), [(1, 4, 31), (Op.LOAD_A | REPLY, 0, 1, 4, 32, 0)]),
        (gemm_dram(4, q4_1 | PAIR_SUM, 2), [("read", 0, words), ("pair", 1, 0), (0, 3, 31)]),
        (gemm_dram(4, q4_1, 3), [("read", 0, words), ("pair", 0, 0), (0, 3, 31)]),
        (gemm_dram(4, q4_1 | PAIR_SUM | ARGMAX, 20), refused(Op.GEMM_DRAM, 4, 20)),
        (pack_header(Op.GEMM, 4, 32, q4_1 | PAIR_SUM, tag=4), refused(Op.GEMM, 4, 4)),
        (gemm_dram(4, 3 | PAIR_SUM, 5), refused(Op.GEMM_DRAM, 4, 5)),
        (gemm_dram(4, q4_1 | 1 << 16, 6), refused(Op.GEMM_DRAM, 4, 6)),
        (pack_header(Op.LOAD_A, 3, 32, 1, tag=7), [(1, 3, 31), (Op.LOAD_A | REPLY, 0, 7, 3, 32, 0)]),
        (gemm_dram(3, q4_1 | PAIR_SUM, 8), refused(Op.GEMM_DRAM, 3, 8)),
        (gemm_dram(3, q4_1, 9), [("read", 0, words), ("pair", 0, 0), (0, 3, 31)]),
        (gemm_dram(3, q4_1 | ARGMAX, 21), refused(Op.GEMM_DRAM, 3, 21)),
        (pack_header(Op.LOAD_A, 2, 32, 1, tag=22), [(1, 2, 31),
                                                    (Op.LOAD_A | REPLY, 0, 22, 2, 32, 0)]),
        (gemm_dram(2, q4_1 | PAIR_SUM | ARGMAX, 23),
         [("read", 0, words), ("pair", 1, 1), (0, 3, 31)]),
        (gemm_dram(2, q4_1 | ARGMAX, 24), refused(Op.GEMM_DRAM, 2, 24)),
        (gemm_dram(2, 3 | PAIR_SUM | ARGMAX, 25), refused(Op.GEMM_DRAM, 2, 25)),
        (pack_header(Op.GEMM, 2, 32, q4_1 | ARGMAX, tag=26), refused(Op.GEMM, 2, 26)),
        (pack_header(Op.LOAD_A, 1, 32, 1, tag=27), [(1, 1, 31),
                                                    (Op.LOAD_A | REPLY, 0, 27, 1, 32, 0)]),
        (gemm_dram(1, q4_1 | ARGMAX, 28), [("read", 0, words), ("pair", 0, 1), (0, 3, 31)]),
        (gemm_dram(1, q4_1 | 1 << 21, 29), refused(Op.GEMM_DRAM, 1, 29)),
    ]
    got, _ = run_parser(config, table, seed=8)
    assert got == [want for _, wants in table for want in wants]
