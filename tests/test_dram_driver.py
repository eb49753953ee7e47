"""The host's side of weights resident in DRAM, against a device in plain Python (`python_board`
with DRAM; no build needed): WRITE_DRAM pieces, the stored GEMM payloads' layout (each piece's
bytes are exactly those of the GEMM frame the driver would stream), GEMM_DRAM replays across K
passes and row blocks, a corrupt stored payload, retries, every bad input refused before
anything is sent, and block GEMM_DRAMs whose device adds each pair of rows (`protocol.PAIR_SUM`).
The same on the simulated board's RTL: tests/test_dram_gemm.py."""

import dataclasses

import numpy as np
import pytest
from block_data import random_activations, random_blocks
from link_recorder import Recorder, result_frames
from python_board import PythonBoard

from systolica.config import Config
from systolica.fp32_model import f32_add
from systolica.host import stored_weights
from systolica.host.block_formats import FORMATS, block_gemm_reference
from systolica.host.driver import Driver, StoredWeightsCorrupt
from systolica.host.frames import DeviceError, gemm_command
from systolica.host.stored_weights import StoredGemm
from systolica.protocol import (
    DRAM_WORD_BYTES,
    HEADER_BYTES,
    MAX_WRITE_DRAM,
    PAIR_SUM,
    REPLY,
    Op,
    Status,
    pack_header,
    unpack_header,
)

# Small buffers: a GEMM of K = 40 is two passes along K, N = 5 two row blocks.
CFG = Config(rows=2, cols=3, link_bytes=16, act_depth=64, max_k=32, rx_fifo_words=64,
             formats=("int8",), dram_mib=4)
DRAM_BYTES = CFG.dram_mib << 20
# Block formats, four rows (pair sums: two a row tile), K = 64 at most four row tiles a LOAD_A.
PAIR_CFG = Config(rows=4, cols=3, link_bytes=16, act_depth=256, max_k=64, rx_fifo_words=64,
                  dram_mib=4)
NO_PAIR_CFG = Config(**{**PAIR_CFG.__dict__, "rows": 3, "act_depth": 192})  # odd rows: no pairs


def _frames(data):
    """(header, the bytes after it up to the next frame) of each command frame in ``data``
    (the host's: IDENTIFY's zero pad is skipped)."""
    out, at = [], 0
    while at < len(data):
        if data[at] == 0:
            at += CFG.link_bytes
            continue
        head = unpack_header(bytes(data[at:at + HEADER_BYTES]))
        end = at + HEADER_BYTES + head.length + (CFG.link_bytes if head.length else 0)
        out.append((head, bytes(data[at + HEADER_BYTES:end])))
        at = end
    return out


def _driver(config=CFG, **kwargs):
    board = PythonBoard(config, **kwargs)
    return Driver(Recorder(board), timeout=1, resync_quiet=0.01), board


def _random(shape, seed):
    return np.random.default_rng(seed).integers(-128, 128, shape, dtype=np.int8)


@pytest.mark.parametrize(("n", "k", "m", "pieces"), [
    (1, 1, 1, 1),
    (5, 40, 7, 2),          # two K passes; N in two row blocks
    (3, 96, 8, 3),          # three K passes
    (2, 40, 11, 2),         # one row tile: each GEMM_DRAM's results in one frame
])
def test_stored_weights_give_the_streamed_gemm(n, k, m, pieces):
    drv, _ = _driver()
    a, w = _random((n, k), 1), _random((k, m), 2)
    stored = drv.store_gemm_weights(w, address=4096)
    assert len(stored.pieces) == pieces and stored.address == 4096
    written, read = len(drv.link.sent), len(drv.link.received)
    got = drv.gemm(a, stored)
    np.testing.assert_array_equal(got, a.astype(np.int64) @ w)
    sent = _frames(drv.link.sent[written:])
    assert {h.op for h, _ in sent} == {Op.LOAD_A, Op.GEMM_DRAM}
    assert all(not body for h, body in sent if h.op == Op.GEMM_DRAM)
    assert drv.stats.weight_bytes_out == 0
    results = result_frames(drv.link.received[read:], CFG)
    if n <= CFG.rows:       # a whole frame a GEMM_DRAM (`protocol`)
        assert results == [(0, 0, n, m)] * pieces
    else:                   # GEMM_DRAMs of fewer rows (whole frames) or a frame a tile
        assert all(r <= CFG.rows and (c <= CFG.cols or (i, j, c) == (0, 0, m))
                   for i, j, r, c in results)
        assert sum(r * c for _, _, r, c in results) == n * m * pieces
    np.testing.assert_array_equal(drv.gemm(a, w), got)         # the same GEMM, streamed


def test_each_stored_payload_is_its_streamed_gemm_frames_payload():
    """The GEMM_DRAMs replay, header field by header field and byte by byte, the GEMMs that
    streaming the same weights sends."""
    drv, board = _driver()
    a, w = _random((5, 40), 3), _random((40, 7), 4)
    stored = drv.store_gemm_weights(w, address=0)
    start = len(drv.link.sent)
    drv.gemm(a, w)
    streamed = [f for f in _frames(drv.link.sent[start:]) if f[0].op == Op.GEMM]
    start = len(drv.link.sent)
    drv.gemm(a, stored)
    replayed = [h for h, _ in _frames(drv.link.sent[start:]) if h.op == Op.GEMM_DRAM]
    assert len(streamed) == len(replayed) == 2 * len(stored.pieces)     # two row blocks
    for (gemm, body), dram in zip(streamed, replayed, strict=True):
        assert (dram.arg0, dram.arg1, dram.arg2, dram.info) == (*gemm.args, gemm.length)
        assert dram.length == 0
        assert board.dram[dram.arg3:dram.arg3 + len(body)] == body


def test_layout_pieces_lie_back_to_back_and_reuse_the_gemm_frame():
    w = _random((40, 7), 5)
    stored, image = stored_weights.layout(CFG, w, "int8", 256)
    assert [(p.k0, p.k, p.c0, p.m) for p in stored.pieces] == [(0, 32, 0, 7), (32, 8, 0, 7)]
    at = 256
    for p in stored.pieces:
        frame = gemm_command(w[p.k0:p.k0 + p.k, p.c0:p.c0 + p.m], 0, CFG)
        assert p.address == at and p.length == unpack_header(frame[:HEADER_BYTES]).length
        assert image[at - 256:at - 256 + len(frame) - HEADER_BYTES] == frame[HEADER_BYTES:]
        at += len(frame) - HEADER_BYTES
    assert stored.end == at == 256 + len(image)


@pytest.mark.parametrize(("size", "address", "max_payload", "writes"), [
    (1, 0, None, 1),                                # padded to one word
    (MAX_WRITE_DRAM, 16, None, 1),
    (2 * MAX_WRITE_DRAM + 5, 4096, None, 3),
    (1000, 32, 100, 11),                            # pieces of 96 bytes
])
def test_write_dram_stores_the_data_padded_in_pieces(size, address, max_payload, writes):
    drv, board = _driver()
    drv.max_payload = max_payload
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    padded = -(-size // DRAM_WORD_BYTES) * DRAM_WORD_BYTES
    board.dram[address:address + padded + 16] = b"\xff" * (padded + 16)
    assert drv.write_dram(address, data) == padded
    assert board.dram[address:address + size] == data
    assert board.dram[address + size:address + padded] == bytes(padded - size)
    assert board.dram[address + padded:address + padded + 16] == b"\xff" * 16
    assert [op for op, _ in board.commands].count(Op.WRITE_DRAM) == writes


def _no_dram():
    return Config(**{**CFG.__dict__, "dram_mib": 0})


@pytest.mark.parametrize(("config", "call", "match"), [
    (CFG, lambda d: d.write_dram(8, b"x"), "0x8 is not a multiple of the DRAM word"),
    (CFG, lambda d: d.write_dram(-16, b"x"), "non-negative integer"),
    (CFG, lambda d: d.write_dram(DRAM_BYTES - 16, bytes(17)), "beyond the device's 4 MiB"),
    (CFG, lambda d: d.write_dram(DRAM_BYTES, b"x"), "beyond the device's 4 MiB"),
    (CFG, lambda d: d.store_gemm_weights(_random((40, 7), 0), address=DRAM_BYTES - 64),
     "the stored weights, .* beyond the device's 4 MiB"),
    (CFG, lambda d: d.store_gemm_weights(_random((4, 4), 0), address=24), "not a multiple"),
    (CFG, lambda d: d.store_gemm_weights(np.zeros((4, 4)), address=0), "integer dtype"),
    (CFG, lambda d: d.store_gemm_weights(np.zeros((4, 40), np.uint8), "q4_1"),
     "does not carry q4_1"),
    (_no_dram(), lambda d: d.write_dram(0, b"x"), "has no DRAM"),
    (_no_dram(), lambda d: d.store_gemm_weights(_random((4, 4), 0)), "has no DRAM"),
])
def test_bad_dram_requests_raise_before_anything_is_sent(config, call, match):
    drv, _ = _driver(config)
    sent = len(drv.link.sent)
    with pytest.raises(ValueError, match=match):
        call(drv)
    assert len(drv.link.sent) == sent


@pytest.mark.parametrize(("call", "match"), [
    (lambda d, s: d.gemm(_random((2, 39), 0), s), "K = 39, the stored weights K = 40"),
    (lambda d, s: d.gemm_blocks(np.zeros((2, 40), np.int8), np.zeros((2, 1), np.uint16), s),
     "xq's K = 40 is not a multiple of 32"),
    (lambda d, s: d.gemm_blocks(np.zeros((2, 32), np.int8), np.zeros((2, 1), np.uint16), s),
     "stored weights are int8"),
])
def test_stored_weights_used_wrongly_raise_before_anything_is_sent(call, match):
    drv, _ = _driver()
    stored = drv.store_gemm_weights(_random((40, 7), 0))
    sent = len(drv.link.sent)
    with pytest.raises(ValueError, match=match):
        call(drv, stored)
    assert len(drv.link.sent) == sent


def test_stored_weights_serve_only_their_device_configuration():
    drv, _ = _driver()
    stored = drv.store_gemm_weights(_random((40, 7), 0))
    other, _ = _driver(Config(**{**CFG.__dict__, "cols": 4}))
    with pytest.raises(ValueError, match="stored for a device of r2c3"):
        other.gemm(_random((2, 40), 0), stored)


def test_a_corrupt_stored_payload_raises_at_once_and_storing_again_cures_it():
    drv, board = _driver()
    a, w = _random((3, 40), 6), _random((40, 7), 7)
    stored = drv.store_gemm_weights(w, address=1 << 20)
    piece = stored.pieces[1]
    word = bytearray(board.dram[piece.address:piece.address + DRAM_WORD_BYTES])
    word[5] ^= 0x40
    drv.write_dram(piece.address, word)
    before = [op for op, _ in board.commands].count(Op.GEMM_DRAM)
    with pytest.raises(StoredWeightsCorrupt, match=f"DRAM 0x{piece.address:x}.*BAD_CRC") as info:
        drv.gemm(a, stored)
    assert info.value.piece == piece and info.value.status == Status.BAD_CRC
    assert [op for op, _ in board.commands].count(Op.GEMM_DRAM) == before + 2    # no retry
    assert drv.stats.retries == 0
    assert drv.store_gemm_weights(w, address=1 << 20) == stored
    np.testing.assert_array_equal(drv.gemm(a, stored), a.astype(np.int64) @ w)


def test_a_gemm_dram_the_device_rejects_raises_its_error():
    """A piece outside the DRAM (the driver checks the range when storing, not at each GEMM):
    the device's BAD_LENGTH error reply, op GEMM_DRAM, is not tried again."""
    drv, _ = _driver()
    stored = drv.store_gemm_weights(_random((8, 3), 0))
    bad = StoredGemm(0, 8, 0, 3, 3, DRAM_BYTES - 16, 16)
    stored = dataclasses.replace(stored, pieces=(bad,))
    with pytest.raises(DeviceError, match="GEMM_DRAM: BAD_LENGTH") as info:
        drv.gemm(_random((2, 8), 0), stored)
    assert info.value.op == Op.GEMM_DRAM and drv.stats.retries == 0


def test_a_write_dram_whose_reply_says_bad_crc_is_written_again():
    replies = []

    def bad_crc_once(op, data):
        if op != Op.WRITE_DRAM or replies:
            return data
        replies.append(op)
        head = unpack_header(data[:HEADER_BYTES])
        return pack_header(Op.WRITE_DRAM | REPLY, head.arg0, status=Status.BAD_CRC, tag=head.tag)

    drv, board = _driver(tamper=bad_crc_once)
    drv.write_dram(64, b"abc" * 100)
    assert board.dram[64:364] == b"abc" * 100
    assert drv.stats.retries == 1
    assert [op for op, _ in board.commands].count(Op.WRITE_DRAM) == 2


# --- pair sums: the device adds rows 2t and 2t+1 -------------------------------------------

def _tiles(blocks, i_tiles, j_tiles):
    """Expected RESULT frames (i, j, rows, cols): ``i_tiles`` rows and ``j_tiles`` columns of each
    row tile and column tile, j-major, for each of ``blocks`` (row blocks) in turn."""
    return [(i, j, r, c) for _ in range(blocks) for j, c in enumerate(j_tiles)
            for i, r in enumerate(i_tiles)]


@pytest.mark.parametrize(("fmt", "n", "k", "m", "max_payload", "results"), [
    ("q8_0", 2, 32, 7, None, [(0, 0, 1, 7)]),           # a decode step: one whole frame
    ("q4_1", 4, 64, 6, None, [(0, 0, 2, 6)]),           # a full row tile, whole frame
    ("q4_0", 10, 32, 8, None, _tiles(1, [2, 2, 1], [3, 3, 2])),   # row tiles 4 4 2, M partial
    ("q4_1", 22, 64, 2, None, _tiles(1, [2, 2, 2, 2], [2]) + _tiles(1, [2, 1], [2])),  # 16 + 6
    ("q8_0", 6, 32, 4, 100, [(0, 0, 1, 4)] * 3),        # a row a LOAD_A would cut pairs: two
])
def test_pair_sums_are_the_f32_sums_of_each_row_pair(fmt, n, k, m, max_payload, results):
    drv, _ = _driver(PAIR_CFG)
    drv.max_payload = max_payload
    rng = np.random.default_rng(n * m)
    xq, xd = random_activations(rng, n, k)
    raw = random_blocks(FORMATS[fmt], m, k // 32, rng)
    stored = drv.store_gemm_weights(raw, fmt, address=4096)
    written, read = len(drv.link.sent), len(drv.link.received)
    got = drv.gemm_blocks(xq, xd, stored, pair_sum=True)
    want = block_gemm_reference(xq, xd, raw, fmt)
    assert got.dtype == np.float32 and got.shape == (n // 2, m)
    np.testing.assert_array_equal(got.view(np.uint32), f32_add(want[0::2], want[1::2]))
    assert result_frames(drv.link.received[read:], PAIR_CFG) == results
    gemms = [h for h, _ in _frames(drv.link.sent[written:]) if h.op == Op.GEMM_DRAM]
    assert gemms and all(h.arg2 == stored.pieces[0].arg2 | PAIR_SUM and h.arg0 % 2 == 0 for h in gemms)
    # Without pair sums the same stored weights give every row, as the reference does.
    np.testing.assert_array_equal(drv.gemm_blocks(xq, xd, stored).view(np.uint32), want)


def _pair_operands(rows):
    rng = np.random.default_rng(rows)
    return (*random_activations(rng, rows, 32), random_blocks(FORMATS["q8_0"], 5, 1, rng))


@pytest.mark.parametrize(("config", "rows", "streamed", "match"), [
    (PAIR_CFG, 3, False, "pair_sum needs an even number of rows in xq .* not N = 3"),
    (PAIR_CFG, 2, True, "pair_sum needs weights stored in the device's DRAM"),
    (NO_PAIR_CFG, 2, False, "pair_sum: the device .* does not add pair sums"),
])
def test_pair_sums_asked_wrongly_raise_before_anything_is_sent(config, rows, streamed, match):
    drv, _ = _driver(config)
    xq, xd, raw = _pair_operands(rows)
    stored = drv.store_gemm_weights(raw, "q8_0")
    sent = len(drv.link.sent)
    with pytest.raises(ValueError, match=match):
        drv.gemm_blocks(xq, xd, raw if streamed else stored, "q8_0", pair_sum=True)
    assert len(drv.link.sent) == sent
    drv.gemm_blocks(xq, xd, raw if streamed else stored, "q8_0")      # the operands are fine
