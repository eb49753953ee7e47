"""The systolica link protocol, version 2: its constants, header packing and frame arithmetic.

The specification (byte stream and link words, the header's fields, the CRC and why it is that
one, how the device receives, idle abort, each command and reply) is `docs/protocol.md`; what is
written there and what this module computes are the same format, and a change to one is a change
to the other.

This module is plain Python (no Amaranth) so that the decoder (`rtl/decoder.py`), the reply framer
(`rtl/framer.py`) and the host (`host/`) all take their constants from here.
"""

import enum
import struct
import zlib
from typing import NamedTuple

__all__ = [
    "ARGMAX",
    "DRAM_WORD_BYTES",
    "HEADER_BYTES",
    "IDENTIFY_PAD",
    "LINE_COUNT_BITS",
    "MAGIC",
    "MAX_LINK_BYTES",
    "MAX_WRITE_DRAM",
    "PAIR_SUM",
    "REPLY",
    "Feature",
    "Format",
    "Header",
    "Op",
    "Status",
    "act_lanes",
    "crc32",
    "crc_word",
    "crc_word_bytes",
    "frame",
    "line_errors",
    "load_a_tile_bytes",
    "pack_header",
    "pad_to_words",
    "padded",
    "payload_ok",
    "result_bytes",
    "unpack_header",
    "words",
]

MAGIC = 0xA5
REPLY = 0x80
HEADER_BYTES = 32
IDENTIFY_PAD = 64
MAX_LINK_BYTES = 32        # a header is a whole number of words
DRAM_WORD_BYTES = 16       # a DRAM controller's native word (16-bit DDR3, 1:2 rate: a BL8 burst)
MAX_WRITE_DRAM = 1 << 20   # bytes of one WRITE_DRAM payload
LINE_COUNT_BITS = 8        # each of IDENTIFY's line error counts (``info``) saturates at 255
_FIELDS = struct.Struct("<BBBBIIIIII")     # the header's bytes 0-27, before its CRC
_CRC = struct.Struct("<I")


class Op(enum.IntEnum):
    IDENTIFY = 0x01
    LOAD_A = 0x02
    GEMM = 0x03
    WRITE_DRAM = 0x04
    GEMM_DRAM = 0x05
    DRAM_CHECK = 0x06
    RESULT = 0x10
    CREDIT = 0x11


class Status(enum.IntEnum):
    OK = 0
    BAD_CHECK = 1      # a header field that must be 0 (a command's status, info, arg3) is not
    BAD_OPCODE = 2
    BAD_LENGTH = 3
    NOT_LOADED = 4
    BAD_SCALE = 5      # a binary16 scale is inf or NaN
    BAD_FORMAT = 6     # a weight or activation format this device does not carry
    BAD_CRC = 7        # a payload's CRC word is wrong: nothing loaded, or a GEMM's results void
    ABORTED = 8        # the command's frame stopped arriving: dropped after the idle timeout


# GEMM_DRAM's arg2 flags: send the sums of result rows 2t and 2t+1, not the rows; send the
# largest result's column and value, not the row (above).
PAIR_SUM = 1 << 23
ARGMAX = 1 << 22


class Feature(enum.IntFlag):
    """What a device can do beyond its formats and sizes (IDENTIFY's ``features``)."""

    PAIR_SUM = 1    # GEMM_DRAM's ``PAIR_SUM`` flag
    ARGMAX = 2      # GEMM_DRAM's ``ARGMAX`` flag


class Format(enum.IntEnum):
    """Weight formats (`systolica.host.block_formats` has their layouts and arithmetic)."""

    INT8 = 0    # int8 weights, int32 results (scales applied by the host)
    Q8_0 = 1    # GGUF blocks: binary16 d, 32 int8
    Q4_0 = 2    # GGUF blocks: binary16 d, 16 bytes of nibbles (offset 8)
    Q4_1 = 3    # GGUF blocks: binary16 d, binary16 m, 16 bytes of nibbles


BLOCK = 32   # elements per block along K, of the GGUF weight blocks and the activations alike

# Bytes of one 32-weight block of each GGUF format on the link, exactly as in the model file.
BLOCK_BYTES = {Format.Q8_0: 34, Format.Q4_0: 18, Format.Q4_1: 20}


class Header(NamedTuple):
    """A header's fields (the magic byte and the CRC are checked, not kept)."""

    op: int
    status: int
    tag: int
    arg0: int
    arg1: int
    arg2: int
    length: int
    info: int = 0
    arg3: int = 0

    @property
    def args(self):
        return (self.arg0, self.arg1, self.arg2)


def line_errors(info):
    """An IDENTIFY reply's ``info`` as (framing errors, overruns); ValueError if it sets bits
    above the two counts."""
    if info >> 2 * LINE_COUNT_BITS:
        raise ValueError(f"an IDENTIFY reply's info 0x{info:08x} sets bits above the line "
                         "error counts")
    mask = (1 << LINE_COUNT_BITS) - 1
    return info & mask, info >> LINE_COUNT_BITS & mask


def crc32(data, value=0):
    """CRC-32/ISO-HDLC of ``data`` (continuing from the CRC ``value`` of what came before)."""
    return zlib.crc32(data, value)


def pack_header(op, arg0=0, arg1=0, arg2=0, *, status=0, tag=0, length=0, info=0, arg3=0):
    """Pack a 32-byte header with its CRC."""
    fields = _FIELDS.pack(MAGIC, op, status, tag, arg0, arg1, arg2, length, info, arg3)
    return fields + _CRC.pack(crc32(fields))


def unpack_header(data):
    """Unpack a 32-byte header to a `Header`; raises ValueError if the magic byte or the CRC is
    wrong."""
    if len(data) != HEADER_BYTES:
        raise ValueError(f"a header is {HEADER_BYTES} bytes, not {len(data)}")
    data = bytes(data)
    magic, op, status, tag, arg0, arg1, arg2, length, info, arg3 = _FIELDS.unpack(data[:28])
    if magic != MAGIC:
        raise ValueError(f"bad magic byte 0x{magic:02x} in header {data.hex()}")
    if _CRC.unpack(data[28:])[0] != crc32(data[:28]):
        raise ValueError(f"bad CRC in header {data.hex()}")
    return Header(op, status, tag, arg0, arg1, arg2, length, info, arg3)


def words(nbytes, link_bytes):
    """Link words that ``nbytes`` bytes take, the last one padded."""
    return -(-nbytes // link_bytes)


def padded(nbytes, link_bytes):
    """Bytes that ``nbytes`` bytes take on the link, padded to whole words."""
    return words(nbytes, link_bytes) * link_bytes


def act_lanes(rows, link_bytes):
    """Activation vectors one LOAD_A link word carries: ``link_bytes // rows`` when ``rows`` is
    smaller than a word and divides it (each vector then takes ``rows`` bytes, packed), else 1
    (each vector padded to whole words on its own)."""
    if rows < link_bytes and link_bytes % rows == 0:
        return link_bytes // rows
    return 1


def load_a_tile_bytes(rows_valid, k, rows, link_bytes, *, blocks=False):
    """Payload bytes of one LOAD_A row tile of ``rows_valid`` rows (of a device's ``rows``) and
    ``k`` vectors, with a scale vector before every 32 if ``blocks``."""
    if act_lanes(rows, link_bytes) > 1:
        acts = padded(k * rows, link_bytes)
    else:
        acts = k * padded(rows_valid, link_bytes)
    return acts + (k // 32 * padded(2 * rows_valid, link_bytes) if blocks else 0)


def result_bytes(rows_valid, cols_valid, cols, link_bytes):
    """Payload bytes of a RESULT frame of ``rows_valid`` x ``cols_valid`` values on a device of
    ``cols`` columns: for each column tile the values span (``cols_valid`` above ``cols`` only
    in a whole GEMM_DRAM's frame), ``rows_valid`` vectors of its values in whole words."""
    full, rest = divmod(cols_valid, cols)
    return rows_valid * (full * padded(4 * cols, link_bytes) + padded(4 * rest, link_bytes))


def pad_to_words(data, link_bytes):
    """Pad ``data`` with zero bytes to a whole number of ``link_bytes`` words."""
    return bytes(data) + bytes(-len(data) % link_bytes)


def crc_word_bytes(link_bytes):
    """Bytes of a payload's CRC word on a link of ``link_bytes``."""
    return max(4, link_bytes)


def crc_word(payload, link_bytes):
    """The CRC word that follows ``payload`` (its padded bytes) on the link."""
    zeros = bytes(crc_word_bytes(link_bytes) - 4)
    return zeros + _CRC.pack(crc32(zeros, crc32(payload)))


def payload_ok(payload_and_crc_word, link_bytes):
    """Whether a payload followed by its CRC word (as received) checks."""
    data = bytes(payload_and_crc_word)
    return _CRC.unpack(data[-4:])[0] == crc32(data[:-4])


def frame(op, arg0=0, arg1=0, arg2=0, payload=b"", *, link_bytes, status=0, tag=0, info=0):
    """A whole frame: the header (``length`` from ``payload``), the payload, padded to whole
    words, and its CRC word if it has one."""
    payload = pad_to_words(payload, link_bytes)
    head = pack_header(op, arg0, arg1, arg2, status=status, tag=tag, length=len(payload),
                       info=info)
    return head + (payload + crc_word(payload, link_bytes) if payload else b"")
