"""Host-side framing (protocol v2): header packing and checking (tag, length, CRC), payload CRC
words, vector tiling and padding, command frames, reply parsing and resynchronisation."""

import struct
import zlib

import numpy as np
import pytest
from amaranth.lib.crc.catalog import CRC32_ISO_HDLC

from systolica import protocol
from systolica.config import Config
from systolica.host.block_formats import FORMATS
from systolica.host.frame_reader import FrameReader
from systolica.host.frames import (
    ProtocolError,
    gemm_blocks_command,
    gemm_command,
    identify_command,
    load_a_blocks_command,
    load_a_command,
    result_tiles,
    tiled_vectors,
)
from systolica.protocol import (
    HEADER_BYTES,
    IDENTIFY_PAD,
    MAGIC,
    REPLY,
    Header,
    Op,
    Status,
    crc_word,
    crc_word_bytes,
    frame,
    pack_header,
    pad_to_words,
    payload_ok,
    unpack_header,
)


def tiled_reference(x, size, link_bytes):
    """Straight from the spec: tile by tile, vector by vector, each padded on its own."""
    x8 = np.asarray(x).astype(np.int8).view(np.uint8)
    out = bytearray()
    for start in range(0, x.shape[1], size):
        for k in range(x.shape[0]):
            out += pad_to_words(x8[k, start:start + size].tobytes(), link_bytes)
    return bytes(out)


def act_reference(a, rows, link_bytes):
    """LOAD_A's activation vectors of each row tile of (N, K) ``a``, straight from the spec:
    where ``rows`` is smaller than a word and divides it, each vector ``rows`` bytes (zeros past
    N) and only the tile's last word padded; else as `tiled_reference`."""
    a8 = np.asarray(a).astype(np.int8).view(np.uint8)
    if rows >= link_bytes or link_bytes % rows:
        return tiled_reference(a8.T, rows, link_bytes)
    out = bytearray()
    for start in range(0, a8.shape[0], rows):
        tile = bytearray()
        for k in range(a8.shape[1]):
            tile += a8[start:start + rows, k].tobytes().ljust(rows, b"\0")
        out += pad_to_words(tile, link_bytes)
    return bytes(out)


@pytest.mark.parametrize("rows", [1, 3, 17])
@pytest.mark.parametrize("cols", [1, 5, 8, 9, 33])
@pytest.mark.parametrize(("size", "link_bytes"), [(1, 1), (3, 2), (8, 8), (8, 16), (5, 4)])
def test_tiled_vectors_follow_the_spec(rows, cols, size, link_bytes):
    x = np.random.default_rng(rows * cols).integers(-128, 128, (rows, cols))
    assert tiled_vectors(x, size, link_bytes) == tiled_reference(x, size, link_bytes)


# --- the CRC ---------------------------------------------------------------------------------

@pytest.mark.parametrize("length", [0, 1, 3, 4, 28, 31, 64, 1000])
def test_host_crc32_is_the_gateware_s_crc(length):
    """`protocol.crc32` (zlib) is the CRC the gateware computes (Amaranth's CRC-32/ISO-HDLC)."""
    data = np.random.default_rng(length).integers(0, 256, length, dtype=np.uint8).tobytes()
    assert protocol.crc32(data) == CRC32_ISO_HDLC().compute(data) == zlib.crc32(data)
    # Continuing from the CRC of a prefix is the CRC of the whole.
    assert protocol.crc32(data[length // 2:], protocol.crc32(data[:length // 2])) == \
        protocol.crc32(data)


# --- headers ---------------------------------------------------------------------------------

HEADER = dict(op=Op.GEMM | REPLY, status=Status.BAD_CRC, tag=0x5C, arg0=0x01020304,
              arg1=0xFFFFFFFF, arg2=3, length=0x40, info=7, arg3=0x80000000)


def test_header_round_trip_with_tag_length_and_crc():
    raw = pack_header(HEADER["op"], HEADER["arg0"], HEADER["arg1"], HEADER["arg2"],
                      status=HEADER["status"], tag=HEADER["tag"], length=HEADER["length"],
                      info=HEADER["info"], arg3=HEADER["arg3"])
    assert len(raw) == HEADER_BYTES == 32 and raw[0] == MAGIC
    assert raw[1:4] == bytes([HEADER["op"], HEADER["status"], HEADER["tag"]])
    assert struct.unpack("<6I", raw[4:28]) == (HEADER["arg0"], HEADER["arg1"], HEADER["arg2"],
                                               HEADER["length"], HEADER["info"], HEADER["arg3"])
    assert raw[28:] == zlib.crc32(raw[:28]).to_bytes(4, "little")
    header = unpack_header(raw)
    assert header == Header(**HEADER)
    assert header.args == (HEADER["arg0"], HEADER["arg1"], HEADER["arg2"])
    # Defaults: a command header with only an op.
    assert unpack_header(pack_header(Op.IDENTIFY)) == Header(Op.IDENTIFY, 0, 0, 0, 0, 0, 0)


def flipped(data, bit):
    out = bytearray(data)
    out[bit // 8] ^= 1 << bit % 8
    return bytes(out)


GEMM_REPLY = pack_header(Op.GEMM | REPLY, 99, 0, 3, tag=9)


def test_a_header_with_any_single_bit_flipped_is_rejected_and_skipped():
    """Each of the 256 bits: the magic byte or the CRC catches it, and the reader drops the
    candidate and finds the reply behind it."""
    raw = pack_header(Op.RESULT | REPLY, 1, 2, 1 | 1 << 16, tag=0x33, length=4)
    for bit in range(8 * HEADER_BYTES):
        bad = flipped(raw, bit)
        with pytest.raises(ValueError, match="bad magic byte" if bit < 8 else "bad CRC"):
            unpack_header(bad)
        reader = FrameReader(link_bytes=1)
        reader.feed(bad + GEMM_REPLY)
        got = reader.frames()
        assert [(f.op, f.tag) for f in got] == [(Op.GEMM, 9)], bit
        assert reader.discarded == HEADER_BYTES and reader.missing() == HEADER_BYTES, bit


@pytest.mark.parametrize("link_bytes", [1, 4, 8, 32])
def test_a_payload_with_any_single_bit_flipped_fails_its_crc(link_bytes):
    """A small RESULT (1 x 1) and its CRC word: every bit of payload, padding and CRC word. The
    frame still comes (its header was sound), with payload_ok False, and the stream stays in
    step."""
    value = np.array([-123456789], dtype="<i4").tobytes()
    good = frame(Op.RESULT | REPLY, 0, 0, 1 | 1 << 16, value, link_bytes=link_bytes, tag=4)
    body = good[HEADER_BYTES:]
    assert len(body) == protocol.padded(4, link_bytes) + crc_word_bytes(link_bytes)
    assert payload_ok(body, link_bytes)
    reply = pad_to_words(GEMM_REPLY, link_bytes)
    for bit in range(8 * len(body)):
        bad = good[:HEADER_BYTES] + flipped(body, bit)
        assert not payload_ok(bad[HEADER_BYTES:], link_bytes), bit
        reader = FrameReader(link_bytes=link_bytes)
        reader.feed(bad + reply)
        result, gemm = reader.frames()
        assert (result.op, result.tag, result.payload_ok) == (Op.RESULT, 4, False), bit
        assert (gemm.op, gemm.payload_ok) == (Op.GEMM, True)
        assert reader.bad_payloads == 1 and reader.discarded == 0


def test_crc_word_is_zeros_then_the_crc_of_everything_before_its_last_four_bytes():
    payload = bytes(range(16))
    for lb in (1, 2, 4, 16, 32):
        word = crc_word(payload, lb)
        assert len(word) == crc_word_bytes(lb) == max(4, lb)
        assert word[:-4] == bytes(len(word) - 4)
        assert word[-4:] == zlib.crc32(payload + word[:-4]).to_bytes(4, "little")


# --- command frames --------------------------------------------------------------------------

def test_identify_command_is_a_header_and_32_zero_bytes():
    cmd = identify_command(tag=17)
    assert len(cmd) == IDENTIFY_PAD == 64 and cmd[HEADER_BYTES:] == bytes(32)
    assert unpack_header(cmd[:HEADER_BYTES]) == Header(Op.IDENTIFY, 0, 17, 0, 0, 0, 0)
    assert unpack_header(identify_command()[:HEADER_BYTES]).tag == 0


def _commands(cfg, rng):
    """(name, command bytes, op, args, the payload as the spec lays it out) for each builder."""
    a = rng.integers(-128, 128, (5, 7))
    w = rng.integers(-128, 128, (7, 3))
    fmt = FORMATS["q4_1"]
    xq = rng.integers(-127, 128, (3, 64)).astype(np.int8)
    xd = rng.integers(0, 0x7C00, (3, 2)).astype(np.uint16)
    raw = rng.integers(0, 256, (5, 2 * fmt.block_bytes), dtype=np.uint8)
    lb = cfg.link_bytes
    blocks_a = b"".join(
        pad_to_words(xd[r0:r0 + cfg.rows, b].astype("<u2").tobytes(), lb)
        + act_reference(xq[r0:r0 + cfg.rows, 32 * b:32 * b + 32], cfg.rows, lb)
        for r0 in range(0, 3, cfg.rows) for b in range(2))
    blocks_w = b"".join(
        pad_to_words(raw[c0:c0 + cfg.cols, b * fmt.block_bytes:(b + 1) * fmt.block_bytes]
                     .tobytes(), lb)
        for c0 in range(0, 5, cfg.cols) for b in range(2))
    return [
        ("load_a", load_a_command(a, cfg, tag=5), Op.LOAD_A, (5, 7, 0),
         act_reference(a, cfg.rows, lb)),
        ("gemm", gemm_command(w, 5, cfg, tag=6), Op.GEMM, (5, 7, 3),
         tiled_reference(w, cfg.cols, lb)),
        ("load_a_blocks", load_a_blocks_command(xq, xd, cfg, tag=7), Op.LOAD_A, (3, 64, 1),
         blocks_a),
        ("gemm_blocks", gemm_blocks_command(raw, fmt, 3, cfg, tag=8), Op.GEMM,
         (3, 64, 5 | fmt.code << 24), blocks_w),
    ]


@pytest.mark.parametrize(("rows", "cols", "link_bytes"), [(1, 1, 1), (2, 3, 4), (4, 4, 16),
                                                          (3, 2, 32), (2, 16, 16), (3, 2, 2)])
def test_command_frames_have_tag_length_and_crc_word(rows, cols, link_bytes):
    cfg = Config(rows=rows, cols=cols, link_bytes=link_bytes)
    rng = np.random.default_rng(rows * 100 + link_bytes)
    commands = _commands(cfg, rng)
    for (name, cmd, op, args, payload), tag in zip(commands, [5, 6, 7, 8], strict=True):
        header = unpack_header(cmd[:HEADER_BYTES])
        assert header == Header(op, 0, tag, *args, length=len(payload)), name
        assert len(payload) % link_bytes == 0, name
        assert cmd[HEADER_BYTES:HEADER_BYTES + header.length] == payload, name
        assert len(cmd) == HEADER_BYTES + header.length + crc_word_bytes(link_bytes), name
        assert payload_ok(cmd[HEADER_BYTES:], link_bytes), name
        assert cmd == frame(op, *args, payload, link_bytes=link_bytes, tag=tag), name


# --- the reply reader ------------------------------------------------------------------------

def test_reader_splits_result_frames_fed_byte_by_byte():
    """Frames come out whole, with their tags; ``missing`` is exact once a header is in (and
    never more than what is really missing)."""
    cfg = Config(rows=2, cols=3, link_bytes=8)
    block = np.array([[1, -2, 3], [2**31 - 1, -(2**31), 0]], dtype="<i4")
    payload = b"".join(pad_to_words(row.tobytes(), 8) for row in block)
    result = frame(Op.RESULT | REPLY, 1, 2, 2 | 3 << 16, payload, link_bytes=8, tag=42)
    stream = result + GEMM_REPLY
    ends = [len(result), len(stream)]
    reader = FrameReader(link_bytes=8)
    frames = []
    for fed, byte in enumerate(stream, 1):
        reader.feed(bytes([byte]))
        frames += reader.frames()
        end = next((e for e in ends if e > fed), None)
        if end is not None:
            start = max((e for e in ends if e <= fed), default=0)
            if fed - start >= HEADER_BYTES:
                assert reader.missing() == end - fed
            else:
                assert reader.missing() == HEADER_BYTES - (fed - start)
    assert [(f.op, f.tag, f.payload_ok) for f in frames] == [(Op.RESULT, 42, True),
                                                            (Op.GEMM, 9, True)]
    assert len(frames[0].payload) == 2 * 16        # the rows' padding kept, the CRC word not
    ((i, j, got),) = result_tiles(frames[0], cfg)
    assert (i, j) == (1, 2)
    np.testing.assert_array_equal(got, block)
    assert reader.buffered == 0 and reader.bad_payloads == 0


def test_reader_takes_the_identify_reply_before_it_knows_the_link():
    cfg = Config(link_bytes=16)
    ident = cfg.identify_payload()
    reader = FrameReader()
    reader.feed(pack_header(Op.CREDIT | REPLY, 77)            # a header alone needs no width
                + frame(Op.IDENTIFY | REPLY, len(ident), 16, 1234, ident, link_bytes=16, tag=1))
    credit, identify = reader.frames()
    assert (credit.op, credit.args[0], credit.tag) == (Op.CREDIT, 77, 0)
    assert (identify.op, identify.payload, identify.tag) == (Op.IDENTIFY, ident, 1)
    assert reader.link_bytes == 16


def test_identify_reply_carries_the_line_error_counts():
    cfg = Config(link_bytes=4)
    ident = cfg.identify_payload()
    reader = FrameReader()
    reader.feed(frame(Op.IDENTIFY | REPLY, len(ident), 4, 0, ident, link_bytes=4, tag=2,
                      info=3 | 255 << 8))
    (identify,) = reader.frames()
    assert protocol.line_errors(identify.info) == (3, 255)
    with pytest.raises(ValueError, match="above the line error counts"):
        protocol.line_errors(1 << 16)


def test_reader_refuses_a_result_before_it_knows_the_link():
    reader = FrameReader()
    with pytest.raises(ProtocolError, match="before IDENTIFY told the link width"):
        reader.feed(frame(Op.RESULT | REPLY, 0, 0, 1 | 1 << 16, bytes(4), link_bytes=4))


@pytest.mark.parametrize(("garbage", "problem"), [
    (bytes(32), "magic"),
    (flipped(pack_header(Op.GEMM | REPLY, 7), 40), "bad CRC"),
    (pack_header(Op.GEMM, 7), "reply bit"),
    (pack_header(0x7F | REPLY, 7), "unknown opcode"),
    (pack_header(0x7F | REPLY, 7, status=Status.BAD_LENGTH), "unknown opcode 0x7f"),
    (pack_header(Op.GEMM | REPLY, 7, status=99), "unknown opcode 0x03 or status 99"),
    (pack_header(Op.RESULT | REPLY, 0, 0, 5 | 3 << 16, length=60), "RESULT of 5x3, larger than"),
    (pack_header(Op.RESULT | REPLY, 0, 0, 0xFFFF | 0xFFFF << 16), "larger than"),
    (pack_header(Op.IDENTIFY | REPLY, 2**31, 1, length=32), "IDENTIFY reply of 2147483648 bytes"),
    (pack_header(Op.IDENTIFY | REPLY, 32, 64, length=64), "on a 64-byte link"),
    (pack_header(Op.IDENTIFY | REPLY, 32, 2, length=32), "on a 2-byte link"),   # reader: 1
    # `length` other than what the op implies.
    (pack_header(Op.IDENTIFY | REPLY, 32, 1, length=36), "IDENTIFY reply with length 36 (its "
                                                          "payload takes 32)"),
    (pack_header(Op.RESULT | REPLY, 0, 0, 2 | 3 << 16, length=12), "RESULT reply with length "
                                                                    "12 (its payload takes 24)"),
    (pack_header(Op.GEMM | REPLY, 7, length=4), "GEMM reply with length 4 (its payload takes 0)"),
    (pack_header(Op.CREDIT | REPLY, 7, length=2**31), "CREDIT reply with length 2147483648"),
    (pack_header(Op.LOAD_A | REPLY, 7, status=Status.BAD_CRC, length=8), "length 8"),
    (bytes([0xA5, 0xA5, 0x00]), "bad CRC"),
    # info: only IDENTIFY's reply carries it (the line's two 8-bit error counts).
    (pack_header(Op.GEMM | REPLY, 7, info=1), "GEMM reply with info 0x00000001"),
    (pack_header(Op.IDENTIFY | REPLY, 32, 1, length=32, info=1 << 16), "info 0x00010000"),
    (pack_header(Op.IDENTIFY | REPLY, 7, status=Status.BAD_CHECK, info=3), "info 0x00000003"),
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
    assert [(f.op, f.args, f.tag) for f in frames] == [(Op.GEMM, (99, 0, 3), 9)]
    assert reader.discarded == len(garbage)
    assert any(problem in p for p in reader.problems), list(reader.problems)


def test_reader_takes_the_bad_opcode_reply_to_an_unknown_opcode():
    reader = FrameReader(link_bytes=1)
    reader.feed(pack_header(0x7E | REPLY, 1, status=Status.BAD_OPCODE, tag=3))
    assert [(f.op, f.status, f.tag) for f in reader.frames()] == [(0x7E, Status.BAD_OPCODE, 3)]
    assert reader.discarded == 0


@pytest.mark.parametrize("prefix", [
    bytes([0xA5]),
    bytes([0xA5, 0x01, 0x02]),
    bytes([0xA5] * 5),
    bytes(7) + bytes([0xA5, 0x81]),
    GEMM_REPLY[:20],                       # a header cut short: the next one starts inside it
    pack_header(Op.LOAD_A | REPLY, 2, 2, tag=1)[:31],
])
def test_reader_finds_a_header_inside_a_failed_candidate(prefix):
    """A magic byte inside a failed candidate starts the next one (no 32-byte skip), so the
    real header that begins within the candidate's 32 bytes is found."""
    reader = FrameReader(link_bytes=1)
    reader.feed(prefix + GEMM_REPLY)
    assert [f.op for f in reader.frames()] == [Op.GEMM] and reader.discarded == len(prefix)


@pytest.mark.parametrize("status", [Status.BAD_OPCODE, Status.BAD_CHECK])
def test_reader_takes_the_error_reply_to_an_unknown_opcode(status):
    """The device answers an opcode it does not know with BAD_OPCODE, or BAD_CHECK when the
    header's must-be-zero fields were not zero (it checks those first)."""
    reader = FrameReader(link_bytes=1)
    reader.feed(pack_header(0x7F | REPLY, 7, status=status, tag=5))
    assert [(f.op, f.status, f.tag) for f in reader.frames()] == [(0x7F, status, 5)]
