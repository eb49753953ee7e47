"""Host-side framing: header packing/checking, vector tiling and padding, reply parsing."""

import numpy as np
import pytest

from systolica.config import Config
from systolica.host.frames import FrameReader, result_tile, tiled_vectors
from systolica.protocol import REPLY, Op, Status, pack_header, pad_to_words, unpack_header


def tiled_reference(x, size, link_bytes):
    """Straight from the spec: tile by tile, vector by vector, each padded on its own."""
    x8 = np.asarray(x).astype(np.int8).view(np.uint8)
    out = bytearray()
    for start in range(0, x.shape[1], size):
        for k in range(x.shape[0]):
            out += pad_to_words(x8[k, start:start + size].tobytes(), link_bytes)
    return bytes(out)


@pytest.mark.parametrize("rows", [1, 3, 17])
@pytest.mark.parametrize("cols", [1, 5, 8, 9, 33])
@pytest.mark.parametrize(("size", "link_bytes"), [(1, 1), (3, 2), (8, 8), (8, 16), (5, 4)])
def test_tiled_vectors_follow_the_spec(rows, cols, size, link_bytes):
    x = np.random.default_rng(rows * cols).integers(-128, 128, (rows, cols))
    assert tiled_vectors(x, size, link_bytes) == tiled_reference(x, size, link_bytes)


def test_header_round_trip_and_check_byte():
    raw = pack_header(Op.GEMM, 1, 2, 3)
    assert len(raw) == 16 and sum(raw) % 256 == 0
    assert unpack_header(raw) == (Op.GEMM, 0, 1, 2, 3)
    bad = bytearray(raw)
    bad[5] ^= 1
    with pytest.raises(ValueError, match="check byte"):
        unpack_header(bytes(bad))


def test_reader_splits_result_frames_fed_byte_by_byte():
    cfg = Config(rows=2, cols=3, link_bytes=8)
    block = np.array([[1, -2, 3], [2**31 - 1, -(2**31), 0]], dtype="<i4")
    payload = b"".join(pad_to_words(row.tobytes(), 8) for row in block)
    stream = (pad_to_words(pack_header(Op.RESULT | REPLY, 1, 2, 2 | 3 << 16), 8) + payload
              + pad_to_words(pack_header(Op.GEMM | REPLY, 99, 0, 3), 8))
    reader = FrameReader(link_bytes=8)
    frames = []
    for byte in stream:
        reader.feed(bytes([byte]))
        frames += reader.frames()
    assert [f.op for f in frames] == [Op.RESULT, Op.GEMM]
    i, j, got = result_tile(frames[0], cfg)
    assert (i, j) == (1, 2)
    np.testing.assert_array_equal(got, block)


GEMM_REPLY = pack_header(Op.GEMM | REPLY, 99, 0, 3)


def flipped(data, bit):
    out = bytearray(data)
    out[bit // 8] ^= 1 << bit % 8
    return bytes(out)


@pytest.mark.parametrize(("garbage", "problem"), [
    (bytes(16), "magic"),
    (flipped(pack_header(Op.GEMM | REPLY, 7), 40), "check byte"),
    (pack_header(Op.GEMM, 7), "reply bit"),
    (pack_header(0x7F | REPLY, 7), "unknown opcode"),
    (pack_header(Op.GEMM | REPLY, 7, status=99), "unknown opcode 0x03 or status 99"),
    (pack_header(Op.RESULT | REPLY, 0, 0, 5 | 3 << 16), "RESULT of 5x3, larger than"),
    (pack_header(Op.RESULT | REPLY, 0, 0, 0xFFFF | 0xFFFF << 16), "larger than"),
    (pack_header(Op.IDENTIFY | REPLY, 2**31, 1), "IDENTIFY reply of 2147483648 bytes"),
    (bytes([0xA5, 0xA5, 0x00]), "check byte"),
])
def test_reader_skips_what_is_not_a_reply_and_finds_the_next(garbage, problem):
    """Garbage, or a header that is not one this device could send, is dropped up to the next
    magic byte (never waited on: a corrupt length would stall the host); the next valid frame
    comes through, and the reader says what it dropped."""
    reader = FrameReader(link_bytes=1, config=Config(rows=2, cols=3, link_bytes=1))
    frames = []
    for byte in garbage + GEMM_REPLY:
        reader.feed(bytes([byte]))
        frames += reader.frames()
    assert [(f.op, f.args) for f in frames] == [(Op.GEMM, (99, 0, 3))]
    assert reader.discarded == len(garbage)
    assert any(problem in p for p in reader.problems), list(reader.problems)


def test_reader_takes_the_bad_opcode_reply_to_an_unknown_opcode():
    reader = FrameReader(link_bytes=1)
    reader.feed(pack_header(0x7E | REPLY, 1, status=Status.BAD_OPCODE))
    assert [(f.op, f.status) for f in reader.frames()] == [(0x7E, Status.BAD_OPCODE)]
    assert reader.discarded == 0


def test_reader_finds_a_header_inside_a_failed_candidate():
    """A magic byte inside a corrupt header starts the next candidate (no 16-byte skip)."""
    reader = FrameReader(link_bytes=1)
    reader.feed(bytes([0xA5, 0x01, 0x02]) + GEMM_REPLY)
    assert [f.op for f in reader.frames()] == [Op.GEMM] and reader.discarded == 3
