"""The reply framer alone (protocol v2): two decoder replies (IDENTIFY with its payload, then a
LOAD_A reply), two GEMMs' result rows arriving with random gaps, a CREDIT frame asked for in the
middle, and each GEMM's reply, which waits for its payload's check (``payload_done``, before or
long after the last RESULT), all sent as link words under random backpressure and read back by a
small reader here (not the host's) that checks every header's CRC and every payload's CRC word."""

from typing import NamedTuple

import numpy as np
import pytest
from streams import receive, send, simulate
from test_drain import tiles_of

from systolica import protocol
from systolica.config import Config
from systolica.protocol import REPLY, Op, Status
from systolica.rtl.framer import Framer

IDENTIFY_TAG = 0x5A
LOAD_TAG = 0x33
GEMM_TAG = 0xC7
GEMM_TAG2 = 0x4E
LATE = 150      # cycles between the last RESULT frame and a late payload_done


class Frame(NamedTuple):
    header: protocol.Header
    payload: bytes      # without the CRC word


class Reader:
    """Splits the bytes the framer sends into frames; fails on a bad magic byte, header CRC,
    payload CRC word or a CRC word's leading zeros that are not zero."""

    def __init__(self, link_bytes):
        self.link_bytes = link_bytes
        self.data = bytearray()
        self.frames = []

    def feed(self, word):
        self.data += word
        while len(self.data) >= protocol.HEADER_BYTES:
            head = protocol.unpack_header(self.data[:protocol.HEADER_BYTES])
            assert head.length % self.link_bytes == 0, head
            crc_bytes = protocol.crc_word_bytes(self.link_bytes) if head.length else 0
            end = protocol.HEADER_BYTES + head.length + crc_bytes
            if len(self.data) < end:
                return
            body = bytes(self.data[protocol.HEADER_BYTES:end])
            if head.length:
                assert protocol.payload_ok(body, self.link_bytes), head
                assert body[-crc_bytes:-4] == bytes(crc_bytes - 4)
                assert body[-crc_bytes:] == protocol.crc_word(body[:-crc_bytes], self.link_bytes)
            self.frames.append(Frame(head, body[:head.length]))
            del self.data[:end]


def result_rows(rng, config, n, m):
    """The result rows of an N x M GEMM as the drain sends them, with random int32 data."""
    rows = []
    for i, j, r, c, end in tiles_of(n, m, config.rows, config.cols):
        for row in range(r):
            data = [int(v) for v in rng.integers(-2**31, 2**31, size=config.cols)]
            rows.append({"data": data, "row_tile": i, "col_tile": j, "rows": r, "cols": c,
                         "first": row == 0, "last": row == r - 1, "end": end and row == r - 1})
    return rows


def run_framer(config, n, m, seed, gemms, p_idle=0.3, p_stall=0.3, stored=False, pair=False):
    """Runs the framer through IDENTIFY, LOAD_A and ``gemms``: (tag, payload_done "early" or
    "late", payload_status, bad_scale) each, GEMM_DRAMs if ``stored`` (a device with DRAM);
    returns the frames read and what the benches saw. With ``pair`` (pair sums), the GEMMs'
    N is 2n (the rows the framer gets are their n sums)."""
    rng = np.random.default_rng(seed)
    dut = Framer(config)
    identify = config.identify_payload()
    rows = [result_rows(rng, config, n, m) for _ in gemms]
    results = 1 if whole_frame(config, n, stored) else len(tiles_of(n, m, config.rows,
                                                                        config.cols))
    seen = {"busy_during": [], "credit_sent": 0, "cycle": 0, "gemm_start": [], "rows_sent": [],
            "payload_done": [], "done_before_reply": []}
    reader = Reader(config.link_bytes)

    def ops():
        return [f.header.op & ~REPLY for f in reader.frames]

    async def clock(ctx):
        while True:
            await ctx.tick()
            seen["cycle"] += 1

    async def payload_done(ctx, payload_status):
        ctx.set(dut.control.payload_status, payload_status)
        ctx.set(dut.control.payload_done, 1)
        await ctx.tick()
        ctx.set(dut.control.payload_done, 0)
        seen["payload_done"].append(seen["cycle"])

    async def decoder(ctx):
        await send(ctx, dut.reply, [
            {"op": Op.IDENTIFY | REPLY, "status": 0, "tag": IDENTIFY_TAG,
             "arg0": len(identify), "arg1": config.link_bytes, "arg2": 1234, "info": 0x7F03},
            {"op": Op.LOAD_A | REPLY, "status": 0, "tag": LOAD_TAG, "arg0": n, "arg1": 7}])
        for g, (tag, done, payload_status, bad_scale) in enumerate(gemms):
            while ctx.get(dut.busy):         # the decoder waits for the GEMM before
                await ctx.tick()
            ctx.set(dut.control.m, m)
            ctx.set(dut.control.n, 2 * n if pair else n)
            if config.dram_mib:
                ctx.set(dut.control.stored, stored)
            if "pair" in dut.control.signature.members:
                ctx.set(dut.control.pair, pair)
            ctx.set(dut.control.tag, tag)
            ctx.set(dut.control.payload_status, 0)
            ctx.set(dut.bad_scale, bad_scale)
            ctx.set(dut.control.gemm_start, 1)
            await ctx.tick()
            ctx.set(dut.control.gemm_start, 0)
            seen["gemm_start"].append(seen["cycle"])
            for cycle in range(40):              # the engine is computing: no rows yet
                seen["busy_during"].append(ctx.get(dut.busy))
                await ctx.tick()
                if cycle == 20 and done == "early":
                    await payload_done(ctx, payload_status)
            await send(ctx, dut.results, rows[g], rng, p_idle)
            seen["rows_sent"].append(seen["cycle"])
            if done == "late":
                while ops().count(Op.RESULT) < results * (g + 1):
                    await ctx.tick()
                for _ in range(LATE):           # the reply waits for the payload's check
                    seen["busy_during"].append(ctx.get(dut.busy))
                    await ctx.tick()
                assert ops().count(Op.GEMM) == g and not reader.data
                await payload_done(ctx, payload_status)

    async def credit(ctx):
        for _ in range(60):
            await ctx.tick()
        ctx.set(dut.credit.consumed, 0xBEEF)
        ctx.set(dut.credit.credit_due, 1)
        while not ctx.get(dut.credit.credit_sent):
            await ctx.tick()
        seen["credit_sent"] += 1
        await ctx.tick()
        ctx.set(dut.credit.credit_due, 0)

    async def host(ctx):
        while ops().count(Op.GEMM) < len(gemms):
            words = await receive(ctx, dut.tx, 1, rng, p_stall, max_cycles=5000)
            reader.feed(int(words[0]).to_bytes(config.link_bytes, "little"))
            if reader.frames and reader.frames[-1].header.op == Op.GEMM | REPLY and \
                    len(seen["done_before_reply"]) < ops().count(Op.GEMM):
                seen["done_before_reply"].append(len(seen["payload_done"]))
        for _ in range(3):
            await ctx.tick()
        seen["busy_after"] = ctx.get(dut.busy)

    simulate(dut, host, clock, decoder, credit)
    return reader.frames, rows, identify, seen


def whole_frame(config, n, stored):
    """Whether a GEMM's results come in one RESULT frame (a GEMM_DRAM of one row tile)."""
    return stored and n <= config.rows


def check_frames(config, n, m, frames, sent, identify, seen, gemms, stored=False):
    lb = config.link_bytes
    whole = whole_frame(config, n, stored)
    credit = [f.header for f in frames if f.header.op == Op.CREDIT | REPLY]
    assert credit == [protocol.Header(Op.CREDIT | REPLY, 0, 0, 0xBEEF, 0, 0, 0)]
    assert seen["credit_sent"] == 1
    frames = [f for f in frames if f.header.op != Op.CREDIT | REPLY]
    heads = [f.header for f in frames]
    assert frames[0].payload == identify and heads[0].length == protocol.padded(32, lb)
    assert heads[0][:3] == (Op.IDENTIFY | REPLY, 0, IDENTIFY_TAG)
    assert heads[0].args == (len(identify), lb, 1234)
    assert heads[0].info == 0x7F03           # IDENTIFY's line error counts, as the parser gave
    assert all(h.info == 0 for h in heads[1:])
    assert heads[1] == protocol.Header(Op.LOAD_A | REPLY, 0, LOAD_TAG, n, 7, 0, 0)
    tiles = tiles_of(n, m, config.rows, config.cols)
    per_gemm = 1 if whole else len(tiles)
    assert [h.op for h in heads] == [Op.IDENTIFY | REPLY, Op.LOAD_A | REPLY] + \
        ([Op.RESULT | REPLY] * per_gemm + [Op.GEMM | REPLY]) * len(gemms)
    for g, (tag, _, payload_status, bad_scale) in enumerate(gemms):
        first = 2 + g * (per_gemm + 1)
        results, gemm = frames[first:first + per_gemm], heads[first + per_gemm]
        if whole:
            check_whole_frame(config, results[0], n, m, tiles, sent[g], tag)
        else:
            check_results(lb, results, tiles, sent[g], tag)
        status = payload_status or (Status.BAD_SCALE if bad_scale else 0)
        assert gemm[:3] == (Op.GEMM | REPLY, status, tag) and gemm.length == 0
        assert gemm.args[1:] == (0, m)
        # counted from gemm_start to the last row's handshake, not to the reply
        assert abs(gemm.arg0 - (seen["rows_sent"][g] - seen["gemm_start"][g])) <= 1
    assert seen["done_before_reply"] == list(range(1, len(gemms) + 1))  # replies waited
    assert all(seen["busy_during"]) and seen["busy_after"] == 0


def check_results(lb, results, tiles, sent, tag):
    """A GEMM's RESULT frames: their headers (tag, length) and their rows."""
    assert [(f.header.arg0, f.header.arg1, f.header.arg2 & 0xFFFF, f.header.arg2 >> 16)
            for f in results] == [t[:4] for t in tiles]
    assert [f.header.length for f in results] == \
        [r * protocol.padded(4 * c, lb) for _, _, r, c, _ in tiles]
    assert all(f.header[1:3] == (0, tag) for f in results)
    got, padding = [], []
    for f in results:
        cols = f.header.arg2 >> 16
        for row in np.frombuffer(f.payload, dtype="<i4").reshape(f.header.arg2 & 0xFFFF, -1):
            got.append(list(row[:cols]))
            padding.append(row[cols:])
    assert got == [row["data"][:row["cols"]] for row in sent]
    assert not any(p.any() for p in padding)        # a partial row's last word: zeros after it


def check_whole_frame(config, frame, n, m, tiles, sent, tag):
    """A GEMM_DRAM's one RESULT frame: i = j = 0, N x M, and every tile's rows in turn."""
    lb = config.link_bytes
    assert frame.header[1:3] == (0, tag)
    assert frame.header.args == (0, 0, n | m << 16)
    assert frame.header.length == protocol.result_bytes(n, m, config.cols, lb)
    got, padding, at = [], [], 0
    for _, _, r, c, _ in tiles:
        size = r * protocol.padded(4 * c, lb)
        for row in np.frombuffer(frame.payload[at:at + size], dtype="<i4").reshape(r, -1):
            got.append(list(row[:c]))
            padding.append(row[c:])
        at += size
    assert at == len(frame.payload)
    assert got == [row["data"][:row["cols"]] for row in sent]
    assert not any(p.any() for p in padding)


CRC, ABORTED = Status.BAD_CRC, Status.ABORTED
CASES = [  # rows, cols, link_bytes, n, m, the first GEMM's payload_done, payload_status, bad_scale
    (2, 3, 1, 3, 5, "early", 0, 0),
    (2, 3, 1, 3, 5, "late", CRC, 1),
    (4, 4, 1, 5, 6, "late", 0, 1),
    (2, 2, 2, 3, 3, "late", ABORTED, 0),
    (4, 4, 4, 4, 8, "late", 0, 1),
    (4, 4, 4, 5, 7, "early", CRC, 0),
    (2, 2, 8, 3, 3, "early", 0, 1),
    (3, 3, 8, 5, 4, "late", CRC, 0),
    (2, 2, 16, 3, 3, "late", 0, 0),
    (2, 5, 16, 3, 7, "early", ABORTED, 1),
]


# The same frames from a framer whose shift register is loaded by its state alone
# (`Config.framer_state_loads`), at each kind of link width; and from one that selects a result
# row's words from its input (`Config.row_hold`, links of up to 4 bytes), with either kind of load.
STATE_LOADS_CASES = [CASES[1], CASES[3], CASES[5], CASES[8]]
ROW_HOLD_CASES = [(CASES[0], False), (CASES[2], True), (CASES[3], True), (CASES[4], False),
                  (CASES[5], True)]


@pytest.mark.parametrize(("rows", "cols", "link_bytes", "n", "m", "done", "payload_status",
                          "bad_scale", "state_loads", "row_hold"),
                         [(*case, False, False) for case in CASES]
                         + [(*case, True, False) for case in STATE_LOADS_CASES]
                         + [(*case, loads, True) for case, loads in ROW_HOLD_CASES])
def test_framer_sends_replies_rows_credit_and_the_gemm_reply(rows, cols, link_bytes, n, m, done,
                                                             payload_status, bad_scale,
                                                             state_loads, row_hold):
    """Two GEMMs: the case's, then one whose payload is checked late and good (its reply must
    wait again, with status 0)."""
    config = Config(rows=rows, cols=cols, link_bytes=link_bytes, act_depth=64, max_k=32,
                    formats=("int8",), rx_fifo_words=max(64, 64 // link_bytes),
                    framer_state_loads=state_loads, row_hold=row_hold)
    gemms = [(GEMM_TAG, done, payload_status, bad_scale), (GEMM_TAG2, "late", 0, 0)]
    frames, sent, identify, seen = run_framer(config, n, m, rows * cols + link_bytes, gemms)
    check_frames(config, n, m, frames, sent, identify, seen, gemms)


# A device with DRAM: a GEMM_DRAM of one row tile sends one RESULT frame (`protocol`), with its
# length counted while the first tile computes (a partial last column tile, M beyond 16
# tiles: the 16-tile steps); one of more row tiles, and a streamed GEMM, a frame a tile.
WHOLE_CASES = [  # rows, cols, n, m, stored
    (2, 3, 2, 7, True),
    (2, 3, 1, 53, True),
    (4, 2, 3, 67, True),
    (2, 3, 3, 7, True),
    (2, 3, 2, 7, False),
]


@pytest.mark.parametrize(("rows", "cols", "n", "m", "stored"), WHOLE_CASES)
def test_framer_sends_a_gemm_drams_results_in_one_frame(rows, cols, n, m, stored):
    config = Config(rows=rows, cols=cols, link_bytes=16, act_depth=64, max_k=32,
                    formats=("int8",), rx_fifo_words=64, dram_mib=2)
    gemms = [(GEMM_TAG, "early", 0, 0), (GEMM_TAG2, "late", CRC, 1)]
    frames, sent, identify, seen = run_framer(config, n, m, m * 7 + n, gemms, stored=stored)
    check_frames(config, n, m, frames, sent, identify, seen, gemms, stored=stored)


@pytest.mark.parametrize(("rows", "cols", "n", "m"), [(2, 3, 1, 7), (4, 2, 2, 67)])
def test_a_whole_frame_of_pair_sums_says_half_the_rows(rows, cols, n, m):
    """With pair sums (`PairSum`) a GEMM_DRAM of N = 2n sends n rows: the whole frame's header
    and length say n."""
    config = Config(rows=rows, cols=cols, link_bytes=16, act_depth=64, max_k=32,
                    formats=("int8", "q8_0"), rx_fifo_words=64, dram_mib=2)
    assert protocol.Feature.PAIR_SUM in config.features
    gemms = [(GEMM_TAG, "early", 0, 0), (GEMM_TAG2, "late", 0, 0)]
    frames, sent, identify, seen = run_framer(config, n, m, m + n, gemms, stored=True,
                                              pair=True)
    check_frames(config, n, m, frames, sent, identify, seen, gemms, stored=True)
