"""Pair sums (`protocol.PAIR_SUM`) on the host's side, without a simulator: hand-built pair-sum
RESULT frames through the frame reader into `frames.GemmResult`, the even row blocks the plan
keeps, the bit-exact check of `BlockLinear`'s summed terms, and what the Python board
(`python_board`) refuses. Whole GEMMs through the driver: tests/test_dram_driver.py."""

import numpy as np
import pytest
from block_data import random_activations, random_blocks
from python_board import PythonBoard

from systolica.config import Config
from systolica.fp32_model import f32_add
from systolica.host import gemm_plan, stored_weights
from systolica.host.accel_linear import bit_exact
from systolica.host.block_formats import FORMATS, block_gemm_reference
from systolica.host.frame_reader import FrameReader
from systolica.host.frames import (
    GemmResult,
    ProtocolError,
    gemm_blocks_command,
    gemm_dram_command,
    load_a_blocks_command,
    load_a_command,
)
from systolica.protocol import (
    HEADER_BYTES,
    PAIR_SUM,
    REPLY,
    Feature,
    Op,
    Status,
    frame,
    pack_header,
    pad_to_words,
    unpack_header,
)

CFG = Config(rows=4, cols=3, link_bytes=16, act_depth=256, max_k=64, rx_fifo_words=64,
             dram_mib=4)
NO_PAIRS = Config(rows=3, cols=3, link_bytes=16, act_depth=192, max_k=64, rx_fifo_words=64,
                  dram_mib=4)           # odd rows: no pair sums
GEMM_REPLY = pack_header(Op.GEMM | REPLY, 99, 0, 0, tag=5)


def test_only_a_device_with_dram_blocks_and_even_rows_adds_pairs():
    assert Feature.PAIR_SUM in CFG.features
    assert Feature.PAIR_SUM not in NO_PAIRS.features


# --- RESULT frames of pair sums ----------------------------------------------------------------

def _result(i, j, block, cfg=CFG):
    """A RESULT frame of ``block`` (rows, cols): each column tile's rows, each padded."""
    payload = b"".join(pad_to_words(np.ascontiguousarray(r[c0:c0 + cfg.cols], "<i4").tobytes(),
                                    cfg.link_bytes)
                       for c0 in range(0, block.shape[1], cfg.cols) for r in block)
    return frame(Op.RESULT | REPLY, i, j, block.shape[0] | block.shape[1] << 16, payload,
                 link_bytes=cfg.link_bytes, tag=5)


def _collect(stream, n, m, pair_sum):
    """``stream`` through a `FrameReader` into a `GemmResult` (n, m); its output."""
    reader = FrameReader(CFG.link_bytes, CFG)
    reader.feed(stream)
    frames = reader.frames()
    assert not reader.discarded, reader.problems        # the reader takes every frame
    result = GemmResult(n, m, CFG, 5, pair_sum=pair_sum)
    done = [result.add(f) for f in frames]
    assert done == [False] * (len(frames) - 1) + [True]
    return result.out


OUT = np.arange(1, 1 + 3 * 5, dtype=np.int64).reshape(3, 5) * [[1], [-1], [1]]


@pytest.mark.parametrize(("n", "m", "frames"), [
    # N = 4 <= rows: a whole frame of N/2 rows, both column tiles in turn
    (4, 5, [(0, 0, OUT[:2, :5])]),
    # N = 6: row tiles of 4 and 2 rows send 2 and 1 sums; j-major
    (6, 5, [(0, 0, OUT[:2, :3]), (1, 0, OUT[2:, :3]), (0, 1, OUT[:2, 3:]), (1, 1, OUT[2:, 3:])]),
])
def test_pair_sum_frames_fill_half_the_rows(n, m, frames):
    stream = b"".join(_result(i, j, block) for i, j, block in frames) + GEMM_REPLY
    got = _collect(stream, n, m, pair_sum=True)
    np.testing.assert_array_equal(got, OUT[:n // 2, :m])
    # The same frames answer no GEMM of n rows without pair sums.
    with pytest.raises(ProtocolError, match="did not cover the output exactly once"):
        _collect(stream, n, m, pair_sum=False)


@pytest.mark.parametrize(("n", "frames", "match"), [
    (8, [(0, 0, np.ones((4, 3), np.int64))], "a RESULT of 4 rows where a row tile has 2 pair"),
    (6, [(0, 0, OUT[:2, :3]), (2, 0, OUT[:1, :3])], r"RESULT tile 2,0 of 1x3 lies outside the "
                                                    r"3x3 output"),
])
def test_a_pair_sum_frame_that_does_not_fit_is_refused(n, frames, match):
    reader = FrameReader(CFG.link_bytes, CFG)
    reader.feed(b"".join(_result(i, j, block) for i, j, block in frames))
    result = GemmResult(n, 3, CFG, 5, pair_sum=True)
    *first, last = reader.frames()
    for f in first:
        result.add(f)
    with pytest.raises(ProtocolError, match=match):
        result.add(last)


def test_pair_sums_need_an_even_gemm():
    with pytest.raises(ValueError, match="even number of rows, not n = 3"):
        GemmResult(3, 2, CFG, 1, pair_sum=True)


# --- the plan: no pair cut between two LOAD_As ------------------------------------------------

@pytest.mark.parametrize(("config", "n", "k", "max_payload", "plain", "paired"), [
    (CFG, 22, 64, None, 16, 16),                          # 4 row tiles a LOAD_A: even already
    (Config(act_depth=1 << 20), 1 << 17, 32, None, 0xFFFF, 0xFFFE),   # N's 16 bits
    (CFG, 6, 32, 100, 1, 2),                              # a row a LOAD_A: a pair instead
])
def test_the_plan_keeps_pairs_together(config, n, k, max_payload, plain, paired):
    fmt = FORMATS["q8_0"]
    assert gemm_plan.plan(config, n, k, 4, fmt, max_payload=max_payload)[0] == plain
    assert gemm_plan.plan(config, n, k, 4, fmt, max_payload=max_payload,
                          pair_sum=True)[0] == paired


# --- BlockLinear's check of summed terms -------------------------------------------------------

def _terms():
    rng = np.random.default_rng(11)
    xq, xd = random_activations(rng, 6, 64)           # 3 rows' two terms: rows t·3 + r
    raw = random_blocks(FORMATS["q4_1"], 5, 2, rng)
    return xq, xd, raw, block_gemm_reference(xq, xd, raw, "q4_1")


def _flip_one_bit(y):
    y = y.copy()
    y[1, 2] ^= 1
    return y


@pytest.mark.parametrize(("device", "exact"), [
    (lambda want: f32_add(want[:3], want[3:]), True),
    (lambda want: _flip_one_bit(f32_add(want[:3], want[3:])), False),
    (lambda want: want[:3], False),                   # term 0 alone
    (lambda want: f32_add(want[0::2], want[1::2]), False),      # the wrong rows paired
])
def test_the_bit_exact_check_of_pair_sums_compares_with_the_terms_sum(device, exact):
    xq, xd, raw, want = _terms()
    y = device(want).astype(np.uint32).view(np.float32)
    assert bit_exact(y, xq, xd, raw, "q4_1", pair_sum=True) is exact


# --- the Python board's rejections --------------------------------------------------------------

def _exchange(board, *commands):
    """The replies (but CREDIT frames) of the board to ``commands``."""
    reader = FrameReader(board.config.link_bytes, board.config)
    for command in commands:
        board.write(command)
    reader.feed(board.read_some(0))
    return [f for f in reader.frames() if f.op != Op.CREDIT]


def _with_pair_sum(command):
    """A GEMM frame with ``PAIR_SUM`` set in its arg2 (its payload unchanged)."""
    head = unpack_header(command[:HEADER_BYTES])
    return pack_header(head.op, head.arg0, head.arg1, head.arg2 | PAIR_SUM, tag=head.tag,
                       length=head.length) + command[HEADER_BYTES:]


def _gemm(config, n, fmt, how):
    """LOAD_A of n rows, then a GEMM_DRAM (``how`` "dram": weights stored at 0 on the board;
    "dram+pairs" with ``PAIR_SUM``) or a streamed GEMM with the flag ("gemm+pairs"); the board
    and the commands."""
    rng = np.random.default_rng(n)
    board = PythonBoard(config)
    if fmt == "int8":
        a, w = rng.integers(-128, 128, (n, 32), np.int8), rng.integers(-128, 128, (32, 5), np.int8)
        load, weights = load_a_command(a, config, tag=1), w
        streamed = None
    else:
        xq, xd = random_activations(rng, n, 32)
        weights = random_blocks(FORMATS[fmt], 5, 1, rng)
        load = load_a_blocks_command(xq, xd, config, tag=1)
        streamed = gemm_blocks_command(weights, FORMATS[fmt], n, config, tag=2)
    stored, image = stored_weights.layout(config, weights, fmt, 0)
    board.dram[:len(image)] = image
    (p,) = stored.pieces
    arg2 = p.arg2 | (PAIR_SUM if how == "dram+pairs" else 0)
    gemm = (_with_pair_sum(streamed) if how == "gemm+pairs" else
            gemm_dram_command(n, p.k, arg2, p.address, p.length, tag=2))
    return board, (load, gemm)


@pytest.mark.parametrize(("config", "n", "fmt", "how", "status", "rows"), [
    (CFG, 4, "q8_0", "dram+pairs", Status.OK, 2),
    (CFG, 4, "q8_0", "dram", Status.OK, 4),
    (CFG, 2, "q4_0", "dram+pairs", Status.OK, 1),
    (CFG, 3, "q8_0", "dram+pairs", Status.BAD_LENGTH, None),     # odd N
    (CFG, 4, "int8", "dram+pairs", Status.BAD_LENGTH, None),
    (CFG, 4, "q8_0", "gemm+pairs", Status.BAD_LENGTH, None),     # only a GEMM_DRAM's flag
    (NO_PAIRS, 2, "q8_0", "dram+pairs", Status.BAD_LENGTH, None),
    (NO_PAIRS, 2, "q8_0", "dram", Status.OK, 2),
])
def test_the_python_board_adds_pairs_only_where_the_protocol_allows(config, n, fmt, how,
                                                                   status, rows):
    board, commands = _gemm(config, n, fmt, how)
    load, *replies = _exchange(board, *commands)
    assert (load.op, load.status) == (Op.LOAD_A, Status.OK)
    final = replies[-1]
    assert final.status == status
    if status:
        assert len(replies) == 1
        assert final.op == (Op.GEMM if how == "gemm+pairs" else Op.GEMM_DRAM)
        return
    (result,) = replies[:-1]                          # one whole frame: N <= rows
    assert (result.op, result.args[2]) == (Op.RESULT, rows | 5 << 16)
    assert (final.op, final.args[2]) == (Op.GEMM, 5)  # the reply still says M
