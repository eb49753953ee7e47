"""The device's argmax (`protocol.ARGMAX`) on the host's side, without a simulator: hand-built
argmax RESULT frames into `frames.GemmResult`, `Driver.argmax_blocks` against a device in plain
Python (`python_board`) and the block model, what the board refuses, `BlockLinear.argmax`, and
``systolica generate --device-argmax`` on the Python board (about a minute in all). The RTL's
argmax unit: tests/test_argmax.py; a generate on the simulated board with DRAM:
tests/test_resident_weights.py."""

import dataclasses
import re
import struct

import numpy as np
import pytest
import python_board
from block_data import random_activations, random_blocks
from link_recorder import Recorder, result_frames
from python_board import PythonBoard

from systolica import cli
from systolica.config import Config
from systolica.fp32_model import f32_add, f32_order_key
from systolica.host import resident_weights
from systolica.host.accel_linear import BlockLinear
from systolica.host.block_formats import FORMATS, block_gemm_reference
from systolica.host.driver import Driver
from systolica.host.frame_reader import FrameReader
from systolica.host.frames import (
    GemmResult,
    ProtocolError,
    gemm_blocks_command,
    gemm_dram_command,
    load_a_blocks_command,
    load_a_command,
)
from systolica.host.generate import generate, open_accelerator, prepare_prompt
from systolica.host.generation_summary import summary_lines
from systolica.host.stored_weights import layout
from systolica.protocol import (
    ARGMAX,
    HEADER_BYTES,
    PAIR_SUM,
    REPLY,
    Feature,
    Op,
    Status,
    frame,
    pack_header,
    result_bytes,
    unpack_header,
)

CFG = Config(rows=4, cols=3, link_bytes=16, act_depth=256, max_k=64, rx_fifo_words=64,
             dram_mib=4)
NO_PAIRS = Config(rows=3, cols=3, link_bytes=16, act_depth=192, max_k=64, rx_fifo_words=64,
                  dram_mib=4)           # odd rows: argmax, but no pair sums
ONE_ROW = 1 | 2 << 16                   # an argmax RESULT's arg2: one row of two values
POS_ZERO, NEG_ZERO = 0x0000_0000, 0x8000_0000


def test_a_device_with_dram_and_block_formats_finds_the_argmax():
    assert Feature.ARGMAX in CFG.features and Feature.ARGMAX in NO_PAIRS.features
    assert Feature.PAIR_SUM not in NO_PAIRS.features
    assert Feature.ARGMAX not in dataclasses.replace(CFG, dram_mib=0).features


def _first_max(bits):
    """(column, bits) of the largest of binary32 patterns ``bits``, as numbers (-0 equal to
    +0), the first of equal ones: the protocol's argmax, written out."""
    keys = [int(k) for k in f32_order_key(np.asarray(bits, dtype=np.uint32))]
    column = keys.index(max(keys))
    return column, int(bits[column])


@pytest.mark.parametrize(("bits", "want"), [
    ([0xBF80_0000, NEG_ZERO, 0xC000_0000, POS_ZERO], (1, NEG_ZERO)),   # -0 first: equal to +0
    ([POS_ZERO, NEG_ZERO], (0, POS_ZERO)),
    ([0xBF80_0000, 0xC000_0000, 0xBF00_0000], (2, 0xBF00_0000)),       # -1, -2, -0.5
    ([0x3F80_0000, 0x7F80_0000, 0x7F7F_FFFF], (1, 0x7F80_0000)),       # 1, +inf, largest finite
    ([0x0000_0001, POS_ZERO, 0x8000_0001], (0, 0x0000_0001)),          # subnormal patterns
])
def test_the_written_out_argmax_orders_as_numbers(bits, want):
    assert _first_max(bits) == want


# --- argmax RESULT frames into GemmResult ----------------------------------------------------

def _result(values, args=(0, 0, ONE_ROW), tag=5):
    """A RESULT frame of ``args`` whose payload (of the length its args imply) starts with the
    u32 ``values``."""
    rows, cols = args[2] & 0xFFFF, args[2] >> 16
    payload = bytearray(result_bytes(rows, cols, CFG.cols, CFG.link_bytes))
    payload[:4 * len(values)] = struct.pack(f"<{len(values)}I", *values)
    return frame(Op.RESULT | REPLY, *args, bytes(payload), link_bytes=CFG.link_bytes, tag=tag)


GEMM_REPLY = pack_header(Op.GEMM | REPLY, 99, 0, 7, tag=5)


def _frames(stream):
    reader = FrameReader(CFG.link_bytes, CFG)
    reader.feed(stream)
    frames = reader.frames()
    assert not reader.discarded, reader.problems        # the reader takes every frame
    return frames


@pytest.mark.parametrize(("n", "pair_sum", "values"), [
    (1, False, (4, 0x3F80_0000)),
    (2, True, (6, NEG_ZERO)),
    (1, False, (0, 0xFF80_0000)),         # -inf is a value like any other
])
def test_an_argmax_result_gives_its_column_and_bits(n, pair_sum, values):
    result = GemmResult(n, 7, CFG, 5, pair_sum=pair_sum, argmax=True)
    done = [result.add(f) for f in _frames(_result(values) + GEMM_REPLY)]
    assert done == [False, True]
    assert result.out == values and result.cycles == 99


@pytest.mark.parametrize(("stream", "match"), [
    (GEMM_REPLY, "came without the argmax RESULT"),
    (_result((1, 2)) * 2, "a second argmax RESULT"),
    (_result((1, 2), args=(0, 1, ONE_ROW)), r"must have arguments \(0, 0, 1 \| 2 << 16\)"),
    (_result((1, 2), args=(0, 0, 1 | 3 << 16)), "must have arguments"),
    (_result((1, 2), args=(0, 0, 2 | 2 << 16)), "must have arguments"),
    (_result((7, 2)), "says column 7, beyond M = 7"),
    (_result((1, 2), tag=6), "a reply with tag 6 during the GEMM sent with tag 5"),
], ids=["no-result", "two-results", "arg1", "three-columns", "two-rows", "column-beyond-m",
        "other-tag"])
def test_an_argmax_reply_the_protocol_does_not_allow_is_refused(stream, match):
    result = GemmResult(1, 7, CFG, 5, argmax=True)
    *first, last = _frames(stream)
    for f in first:
        assert not result.add(f)
    with pytest.raises(ProtocolError, match=match):
        result.add(last)


@pytest.mark.parametrize(("n", "pair_sum", "match"), [
    (2, False, r"argmax needs results of one row, not 2 \(n = 2\)"),
    (4, True, r"not 2 \(n = 4, pair sums\)"),
])
def test_an_argmax_of_more_than_one_row_is_not_collected(n, pair_sum, match):
    with pytest.raises(ValueError, match=match):
        GemmResult(n, 7, CFG, 5, pair_sum=pair_sum, argmax=True)


# --- Driver.argmax_blocks on the Python board ------------------------------------------------

def _driver(config=CFG):
    return Driver(Recorder(PythonBoard(config)), timeout=1, resync_quiet=0.01)


def _store(drv, raw, fmt, tiles, monkeypatch):
    """``raw`` stored at address 0 as `resident_weights.lay_out` lays out the LM head, in
    pieces (one GEMM_DRAM each) of ``tiles`` column tiles (None: one piece in all)."""
    cfg = drv.config
    if tiles:
        one = layout(cfg, raw[:cfg.cols], fmt, 0)[0]           # one column tile's payload
        crc = one.size - one.pieces[0].length
        monkeypatch.setattr(resident_weights, "MAX_PIECE_BYTES",
                            crc + tiles * one.pieces[0].length)
    stored, image = resident_weights.lay_out(cfg, raw, fmt, 0)
    drv.write_dram(0, image)
    columns = tiles * cfg.cols if tiles else raw.shape[0]
    assert [p.c0 for p in stored.pieces] == list(range(0, raw.shape[0], columns))
    return stored


def _sent_headers(data):
    """The headers of the command frames in ``data`` (whole frames; IDENTIFY's zero pad
    skipped)."""
    out, at = [], 0
    while at < len(data):
        if data[at] == 0:
            at += CFG.link_bytes
            continue
        head = unpack_header(bytes(data[at:at + HEADER_BYTES]))
        out.append(head)
        at += HEADER_BYTES + head.length + (CFG.link_bytes if head.length else 0)
    return out


def _row(xq, xd, raw, fmt, pair_sum):
    """The one result row (binary32 patterns) the device compares."""
    want = block_gemm_reference(xq, xd, raw, fmt)
    return f32_add(want[0], want[1]) if pair_sum else want[0]


def _scales_zeroed(raw, fmt, columns):
    """``raw`` with every block scale (and Q4_1 offset) of ``columns`` +0: their results +0."""
    fmt = FORMATS[fmt]
    raw = raw.copy()
    blocks = raw.reshape(raw.shape[0], -1, fmt.block_bytes)
    blocks[columns, :, :4 if fmt.has_offset else 2] = 0
    return raw


def _special(raw, fmt, row, special):
    """``raw`` changed so that its result row has what ``special`` says: "tie", the largest
    result also at column 0 and the last column (their weights copied from its column);
    "zeros", the positive results made +0 (several equal maxima, +0)."""
    if special == "tie":
        raw = raw.copy()
        raw[[0, -1]] = raw[_first_max(row)[0]]
    elif special == "zeros":
        raw = _scales_zeroed(raw, fmt, np.flatnonzero(f32_order_key(row) > 0))
    return raw


@pytest.mark.parametrize(("fmt", "m", "k", "pair_sum", "tiles", "special"), [
    ("q8_0", 1, 32, False, None, None),            # M = 1
    ("q4_0", 7, 64, False, None, None),            # a partial last column tile
    ("q4_1", 7, 64, True, None, None),
    ("q8_0", 8, 32, False, 1, None),               # three pieces: 3, 3 and 2 columns
    ("q4_1", 8, 64, True, 1, None),
    ("q4_0", 20, 32, False, 2, None),              # pieces of 6, 6, 6 and 2 columns
    ("q8_0", 7, 32, False, 1, "tie"),              # equal maxima in the first and last pieces
    ("q4_0", 7, 32, True, 1, "tie"),
    ("q8_0", 7, 32, False, 1, "zeros"),            # the largest is +0, at several columns
    ("q4_1", 7, 64, True, None, "zeros"),
])
def test_the_device_argmax_is_the_reference_rows(fmt, m, k, pair_sum, tiles, special,
                                                  monkeypatch):
    drv = _driver()
    rng = np.random.default_rng(m * k + pair_sum)
    xq, xd = random_activations(rng, 2 if pair_sum else 1, k)
    raw = random_blocks(FORMATS[fmt], m, k // 32, rng)
    raw = _special(raw, fmt, _row(xq, xd, raw, fmt, pair_sum), special)
    row = _row(xq, xd, raw, fmt, pair_sum)
    want = _first_max(row)
    if special:                 # the case is what it says: equal maxima, the first one wins
        assert (f32_order_key(row) == f32_order_key(want[1])).sum() >= 2
    stored = _store(drv, raw, fmt, tiles, monkeypatch)
    written, read = len(drv.link.sent), len(drv.link.received)
    before = dataclasses.replace(drv.stats)
    column, value = drv.argmax_blocks(xq, xd, stored, pair_sum=pair_sum)
    assert isinstance(column, int) and isinstance(value, np.float32)
    assert (column, int(value.view(np.uint32))) == want
    # One GEMM_DRAM a piece, each with ARGMAX (and PAIR_SUM), each answered by one argmax
    # RESULT: no result row crossed the link.
    sent = [h for h in _sent_headers(drv.link.sent[written:]) if h.op == Op.GEMM_DRAM]
    flags = ARGMAX | (PAIR_SUM if pair_sum else 0)
    assert [(h.arg0, h.arg2) for h in sent] == [(2 if pair_sum else 1, p.arg2 | flags)
                                                for p in stored.pieces]
    assert result_frames(drv.link.received[read:], CFG) == [(0, 0, 1, 2)] * len(stored.pieces)
    assert drv.stats.device_gemms - before.device_gemms == len(stored.pieces)
    assert drv.stats.device_cycles - before.device_cycles == 1234 * len(stored.pieces)


@pytest.mark.parametrize(("bits", "want"), [
    # pieces of three columns: equal keys in two pieces, the lower column wins
    ([0xBF80_0000, NEG_ZERO, 0xC000_0000, POS_ZERO, 0xBF80_0000], (1, NEG_ZERO)),
    ([0xBF80_0000, POS_ZERO, 0xC000_0000, NEG_ZERO, 0xBF80_0000], (1, POS_ZERO)),
    ([0xBF80_0000, 0xC000_0000, 0xC040_0000, NEG_ZERO, POS_ZERO], (3, NEG_ZERO)),  # one piece
    ([0xBF80_0000, 0xC000_0000, 0xBF00_0000, 0xC040_0000], (2, 0xBF00_0000)),   # all negative
    ([0x3F80_0000, 0x4000_0000, 0x3F80_0000, 0x4000_0000, 0x7F80_0000], (4, 0x7F80_0000)),
    ([0x3F80_0000, 0x4000_0000, 0x3F80_0000, 0x4000_0000, 0x4000_0000], (1, 0x4000_0000)),
])
@pytest.mark.parametrize("pair_sum", [False, True])
def test_signed_zeros_and_ties_across_pieces(bits, want, pair_sum, monkeypatch):
    """Results the block datapath cannot make on purpose (it never makes -0: every sum starts
    from +0), written into the weights: the board's block model is replaced by one that
    returns each column's pattern from its first four quants. The board's comparison and the
    host's across pieces take -0 and +0 as equal, the first of equal ones."""
    def encoded(xq, xd, raw, fmt):
        row = np.ascontiguousarray(raw[:, 2:6]).view("<u4")[:, 0]
        return np.tile(row, (xq.shape[0], 1))

    monkeypatch.setattr(python_board, "block_gemm_reference", encoded)
    raw = np.zeros((len(bits), 34), dtype=np.uint8)
    raw[:, 1] = 0x3C                                        # scale 1.0: finite
    raw[:, 2:6] = np.array(bits, dtype="<u4").view(np.uint8).reshape(-1, 4)
    drv = _driver()
    stored = _store(drv, raw, "q8_0", 1, monkeypatch)
    rng = np.random.default_rng(1)
    xq, xd = random_activations(rng, 2 if pair_sum else 1, 32)
    column, value = drv.argmax_blocks(xq, xd, stored, pair_sum=pair_sum)
    bits = np.array(bits, dtype=np.uint32)
    if pair_sum:                # the board adds the two (equal) rows: x + x keeps the order
        want = _first_max(f32_add(bits, bits))
    assert (column, int(value.view(np.uint32))) == want


# --- argmax asked wrongly ----------------------------------------------------------------------

def _operands(rows, k=32, seed=3):
    rng = np.random.default_rng(seed)
    return (*random_activations(rng, rows, k), random_blocks(FORMATS["q8_0"], 5, 2, rng))


def _no_argmax(self):
    return Feature.PAIR_SUM


@pytest.mark.parametrize(("config", "call", "match"), [
    (CFG, lambda d, s, raw: d.argmax_blocks(*_operands(1, 64)[:2], raw),
     "stored: argmax_blocks needs block weights stored in the device's DRAM"),
    (CFG, lambda d, s, raw: d.argmax_blocks(*_operands(1, 64)[:2], d.int8_weights),
     "stored: argmax_blocks needs block weights"),
    (NO_PAIRS, lambda d, s, raw: d.argmax_blocks(*_operands(2, 64)[:2], s, pair_sum=True),
     r"pair_sum: the device \(r3c3.*\) does not add pair sums"),
    (CFG, lambda d, s, raw: d.argmax_blocks(*_operands(2, 64)[:2], s),
     r"xq must hold one row of activations \(two terms with pair_sum\), not N = 2$"),
    (CFG, lambda d, s, raw: d.argmax_blocks(*_operands(1, 64)[:2], s, pair_sum=True),
     "not N = 1 with pair_sum"),
    (CFG, lambda d, s, raw: d.argmax_blocks(*_operands(3, 64)[:2], s, pair_sum=True),
     "not N = 3 with pair_sum"),
    (CFG, lambda d, s, raw: d.argmax_blocks(*_operands(1, 96)[:2], s),
     "xq's K = 96 is more than the device's max_k = 64"),
    (CFG, lambda d, s, raw: d.argmax_blocks(*_operands(1, 32)[:2], s),
     "the activations have K = 32, the stored weights K = 64"),
    (CFG, lambda d, s, raw: d.argmax_blocks(
        *_operands(1, 64)[:2], dataclasses.replace(s, config=NO_PAIRS)),
     "the weights were stored for a device of r3c3"),
    (CFG, lambda d, s, raw: d.argmax_blocks(*_operands(1, 64)[:2], s),
     r"argmax_blocks: the device \(.*\) does not find the argmax"),
], ids=["streamed", "int8", "no-pair-sums", "two-rows", "one-row-pair", "three-rows-pair",
        "k-above-max-k", "k-mismatch", "other-device", "no-feature"])
def test_argmax_asked_wrongly_raises_before_anything_is_sent(config, call, match, request,
                                                             monkeypatch):
    drv = _driver(config)
    raw = _operands(1, 64)[2]
    stored = drv.store_gemm_weights(raw, "q8_0")
    drv.int8_weights = drv.store_gemm_weights(np.ones((64, 5), np.int8), address=1 << 20)
    if request.node.callspec.id == "no-feature":        # a device that does not report it
        monkeypatch.setattr(Config, "features", property(_no_argmax))
    sent = len(drv.link.sent)
    with pytest.raises(ValueError, match=match):
        call(drv, stored, raw)
    assert len(drv.link.sent) == sent


def test_stored_gemm_commands_set_argmax_only_on_one_row_of_blocks():
    (block,) = layout(CFG, _operands(1, 64)[2], "q8_0", 0)[0].pieces
    (int8,) = layout(CFG, np.ones((64, 5), np.int8), "int8", 0)[0].pieces
    assert unpack_header(block.command(1, argmax=True)).arg2 == block.arg2 | ARGMAX
    assert unpack_header(block.command(2, pair_sum=True, argmax=True)).arg2 == (
        block.arg2 | ARGMAX | PAIR_SUM)
    assert unpack_header(block.command(1)).arg2 == block.arg2
    for piece, n, pair_sum, match in [
            (int8, 1, False, "argmax needs weights in a block format, not int8"),
            (block, 2, False, "argmax needs results of one row: .* not n = 2"),
            (block, 4, True, "not n = 4")]:
        with pytest.raises(ValueError, match=match):
            piece.command(n, pair_sum=pair_sum, argmax=True)


# --- what the Python board refuses ---------------------------------------------------------

def _exchange(board, *commands):
    """The replies (but CREDIT frames) of the board to ``commands``."""
    reader = FrameReader(board.config.link_bytes, board.config)
    for command in commands:
        board.write(command)
    reader.feed(board.read_some(0))
    return [f for f in reader.frames() if f.op != Op.CREDIT]


def _with_flags(command, flags):
    head = unpack_header(command[:HEADER_BYTES])
    return pack_header(head.op, head.arg0, head.arg1, head.arg2 | flags, tag=head.tag,
                       length=head.length) + command[HEADER_BYTES:]


@pytest.mark.parametrize(("config", "n", "fmt", "how", "flags", "status"), [
    (CFG, 1, "q8_0", "dram", ARGMAX, Status.OK),
    (CFG, 2, "q4_1", "dram", ARGMAX | PAIR_SUM, Status.OK),
    (NO_PAIRS, 1, "q4_0", "dram", ARGMAX, Status.OK),
    (CFG, 2, "q8_0", "dram", ARGMAX, Status.BAD_LENGTH),             # two result rows
    (CFG, 4, "q8_0", "dram", ARGMAX | PAIR_SUM, Status.BAD_LENGTH),  # two rows of sums
    (CFG, 1, "int8", "dram", ARGMAX, Status.BAD_LENGTH),
    (CFG, 1, "q8_0", "gemm", ARGMAX, Status.BAD_LENGTH),             # only a GEMM_DRAM's flag
    (NO_PAIRS, 2, "q8_0", "dram", ARGMAX | PAIR_SUM, Status.BAD_LENGTH),
    (CFG, 1, "q8_0", "no feature", ARGMAX, Status.BAD_LENGTH),
])
def test_the_python_board_finds_the_argmax_only_where_the_protocol_allows(
        config, n, fmt, how, flags, status, monkeypatch):
    if how == "no feature":
        monkeypatch.setattr(Config, "features", property(_no_argmax))
    rng = np.random.default_rng(n)
    board = PythonBoard(config)
    if fmt == "int8":
        a = rng.integers(-128, 128, (n, 32), np.int8)
        weights = rng.integers(-128, 128, (32, 5), np.int8)
        load = load_a_command(a, config, tag=1)
    else:
        xq, xd = random_activations(rng, n, 32)
        weights = random_blocks(FORMATS[fmt], 5, 1, rng)
        load = load_a_blocks_command(xq, xd, config, tag=1)
    stored, image = layout(config, weights, fmt, 0)
    board.dram[:len(image)] = image
    (p,) = stored.pieces
    if how == "gemm":
        gemm = _with_flags(gemm_blocks_command(weights, FORMATS[fmt], n, config, tag=2), flags)
    else:
        gemm = gemm_dram_command(n, p.k, p.arg2 | flags, p.address, p.length, tag=2)
    loaded, *replies = _exchange(board, load, gemm)
    assert (loaded.op, loaded.status) == (Op.LOAD_A, Status.OK)
    final = replies[-1]
    assert final.status == status
    if status:
        assert len(replies) == 1
        assert final.op == (Op.GEMM if how == "gemm" else Op.GEMM_DRAM)
        return
    (result,) = replies[:-1]
    assert (result.op, result.args) == (Op.RESULT, (0, 0, ONE_ROW))
    column, bits = struct.unpack("<II", result.payload[:8])
    assert (column, bits) == _first_max(_row(xq, xd, weights, fmt, bool(flags & PAIR_SUM)))
    assert (final.op, final.args[2]) == (Op.GEMM, 5)      # the reply still says M


# --- BlockLinear.argmax ------------------------------------------------------------------------

HEAD = "output.weight"


class TinyModelFile:
    """Stands in for a `ModelFile` of one weight tensor (``HEAD``) of random GGUF blocks."""

    def __init__(self, fmt, m, k, seed):
        self.fmt = FORMATS[fmt]
        self._raw = random_blocks(self.fmt, m, k // 32, np.random.default_rng(seed), special=0)

    def raw(self, name):
        return self._raw

    def quant_type(self, name):
        return self.fmt.ggml_type


M = 40


def _linear(config, terms, defer_check, tiles, monkeypatch, tamper=None):
    model = TinyModelFile("q8_0", M, 64, seed=terms)
    drv = Driver(Recorder(PythonBoard(config, tamper=tamper)), timeout=1, resync_quiet=0.01)
    stored = _store(drv, model.raw(HEAD), "q8_0", tiles, monkeypatch)
    return BlockLinear(drv, model, float_check=False, defer_check=defer_check, terms=terms,
                       resident={HEAD: stored}), stored


@pytest.mark.parametrize(("config", "terms", "defer_check", "tiles"), [
    (CFG, 2, False, 4),                # the two terms summed on the device; pieces of 12
    (CFG, 2, True, None),
    (CFG, 1, False, 4),
    (NO_PAIRS, 1, True, 4),            # one term needs no pair sums
])
def test_block_linear_argmax_is_its_rows_largest(config, terms, defer_check, tiles,
                                                 monkeypatch):
    """The device's argmax of a resident tensor is the largest of the very row `__call__`
    returns (the same quantization, the same terms), checked bit-exact, and only it came
    back."""
    linear, stored = _linear(config, terms, defer_check, tiles, monkeypatch)
    assert linear.can_argmax(HEAD) and not linear.can_argmax("blk.0.attn_q.weight")
    x = np.random.default_rng(terms).standard_normal((1, 64)).astype(np.float32)
    y = linear(x, HEAD)
    read = len(linear.driver.link.received)
    column, value = linear.argmax(x, HEAD)
    linear.settle()
    assert (column, int(value.view(np.uint32))) == _first_max(y[0].view(np.uint32))
    row, found = linear.records
    assert found.argmax and not row.argmax
    assert found.exact is True and row.exact is True
    assert found.pair_sum == row.pair_sum == (terms == 2)
    assert (found.n, found.k, found.m) == (row.n, row.k, row.m) == (terms, 64, M)
    assert found.dram_bytes == found.stored_bytes == stored.size
    assert found.device_cycles == 1234 * len(stored.pieces)
    # The device still holds the activations `__call__` loaded: only GEMM_DRAM headers went.
    assert found.bytes_out == 32 * len(stored.pieces) < row.bytes_out
    # Back: one argmax RESULT a piece instead of the row's values.
    assert result_frames(linear.driver.link.received[read:], config) == (
        [(0, 0, 1, 2)] * len(stored.pieces))
    assert found.bytes_in < row.bytes_in
    assert np.isnan(found.cosine) and np.isnan(found.max_abs_error)


def _argmax_tampered(change):
    """A board ``tamper`` that changes each argmax RESULT's (column, bits) by ``change``."""
    def tamper(op, data):
        head = unpack_header(data[:HEADER_BYTES])
        if op != Op.RESULT or head.args[:3] != (0, 0, ONE_ROW):
            return data
        payload = bytearray(data[HEADER_BYTES:HEADER_BYTES + head.length])
        payload[:8] = struct.pack("<II", *change(*struct.unpack("<II", payload[:8])))
        return frame(Op.RESULT | REPLY, *head.args, bytes(payload), link_bytes=CFG.link_bytes,
                     tag=head.tag)
    return tamper


@pytest.mark.parametrize("change", [
    lambda column, bits: ((column + 1) % M, bits),          # another column
    lambda column, bits: (column, bits ^ 1),                # the value one ulp off
], ids=["column", "bits"])
@pytest.mark.parametrize("defer_check", [False, True])
def test_block_linear_argmax_check_fails_on_a_wrong_answer(change, defer_check, monkeypatch):
    linear, _ = _linear(CFG, 2, defer_check, None, monkeypatch,
                        tamper=_argmax_tampered(change))
    linear.argmax(np.ones((1, 64), np.float32), HEAD)
    linear.settle()
    assert linear.records[-1].exact is False


def test_block_linear_argmax_asked_wrongly(monkeypatch):
    linear, _ = _linear(NO_PAIRS, 2, False, None, monkeypatch)      # two terms, no pair sums
    assert not linear.can_argmax(HEAD)
    with pytest.raises(ValueError, match=r"argmax of output\.weight: it needs .* \(can_argmax\)"):
        linear.argmax(np.ones((1, 64), np.float32), HEAD)
    linear, _ = _linear(CFG, 2, False, None, monkeypatch)
    with pytest.raises(ValueError, match=r"one activation row, shape \(1, K\), not \(2, 64\)"):
        linear.argmax(np.ones((2, 64), np.float32), HEAD)
    streamed = BlockLinear(linear.driver, linear.model_file, float_check=False)
    assert not streamed.can_argmax(HEAD)
    assert not linear.records


# --- generate --device-argmax on the Python board (about a minute) --------------------------

PY_CFG = Config(dram_mib=128)        # holds the whole model (about 100 MB stored)
PROMPT = "The"


def test_device_argmax_generates_the_same_tokens_with_fewer_link_bytes(model_file):
    """Two tokens with every weight resident on the Python board, once with the logits and
    once with the device's argmax: the same tokens, the float model's greedy ones, every GEMM
    (and argmax) bit-exact; the argmax steps bring back about the logits' 197 kB less and
    send the same bytes; the summary says no logits were sent."""
    accel = open_accelerator(PythonBoard(PY_CFG), model_file, timeout=30, device_argmax=True)
    prompt = prepare_prompt(model_file, PROMPT)
    run = dict(linear=accel.linear, driver=accel.driver, link=accel.link, tokens=2)
    try:
        logits = generate(model_file, prompt, **run)
        argmax = generate(model_file, prompt, check=True, device_argmax=True, **run)
    finally:
        accel.close()
    assert argmax.ids == logits.ids
    assert logits.all_exact and argmax.all_exact
    assert argmax.device_argmax and not logits.device_argmax
    assert [s.float_argmax for s in argmax.steps] == argmax.ids and argmax.divergence is None
    assert argmax.checked and argmax.cosines == []
    head = [r for r in accel.linear.records if r.weight == "token_embd"]
    assert [r.argmax for r in head] == [False, False, True, True]
    vocab = model_file.params.vocab_size
    for with_logits, without in zip(logits.steps, argmax.steps, strict=True):
        assert without.device_argmax and not with_logits.device_argmax
        assert without.bytes_out == with_logits.bytes_out
        assert without.device_gemms == with_logits.device_gemms
        saved = with_logits.result_bytes - without.result_bytes
        assert 4 * vocab * 0.95 < saved < 4 * vocab
    lines = summary_lines(argmax)
    assert any("no logits were sent" in line and "at 2 of them" in line for line in lines)
    assert "first step whose greedy token differs from the float model's: none" in lines
    assert not any("cosine per step" in line for line in lines)


# --- the command line ----------------------------------------------------------------------

def _no_simulator(*args, **kwargs):
    raise AssertionError("the simulated board was started before the input was checked")


@pytest.mark.parametrize(("args", "message"), [
    (["--backend", "float"], "not with --backend float"),
    (["--dram", "--temperature", "0.7"], "not with sampling (--temperature 0.7)"),
    (["--dram", "--stream-weights"], "not with --stream-weights"),
    ([], "needs the weights resident in the device's DRAM: add --dram"),
])
def test_cli_device_argmax_refuses_what_it_cannot_do(args, message, capsys, monkeypatch):
    monkeypatch.setattr("systolica.host.link.SimulatedBoardLink", _no_simulator)
    assert cli.main(["generate", PROMPT, "--device-argmax", *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("systolica generate: error: --device-argmax") and message in err


def test_cli_device_argmax_refuses_a_device_without_it_before_the_upload(capsys, monkeypatch):
    boards = []

    def python_board_link(config):
        boards.append(PythonBoard(config))
        return boards[-1]

    monkeypatch.setattr("systolica.host.link.SimulatedBoardLink", python_board_link)
    monkeypatch.setattr(Config, "features", property(_no_argmax))
    assert cli.main(["generate", PROMPT, "--dram", "--device-argmax"]) == 1
    err = capsys.readouterr().err
    assert "device argmax" in err and "no Feature.ARGMAX" in err and err.count("\n") == 1
    (board,) = boards
    assert [op for op, _ in board.commands] == [Op.IDENTIFY]       # nothing uploaded


def test_cli_device_argmax_on_the_python_board(capsys, monkeypatch):
    """The whole command, its simulated board standing in for by the Python board (with the
    512 MiB of --dram): the tokens, and a summary that says the logits were not sent."""
    monkeypatch.setattr("systolica.host.link.SimulatedBoardLink", PythonBoard)
    monkeypatch.setattr("systolica.host.projection.save_run", lambda *args: None)  # not RTL
    assert cli.main(["generate", PROMPT, "--dram", "--device-argmax", "--tokens", "2"]) == 0
    out, _ = capsys.readouterr()
    assert "the LM head's greedy token found on the device (argmax)" in out
    assert "so no logits were sent and there is no cosine for any 2 steps" in out
    assert "first step whose greedy token differs from the float model's: none" in out
    assert re.search(r"all \d+ device GEMMs bit-exact with the block model", out)
