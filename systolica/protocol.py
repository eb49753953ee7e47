"""The systolica link protocol, version 1: the one place the frame format is written down.

This module is plain Python (no Amaranth) so that the decoder (`rtl/decoder.py`), the reply framer
(`rtl/framer.py`) and the host (`host/`) all take their constants from here.

Byte stream and link words
--------------------------
The link is a byte stream in each direction. The device's link adapter moves ``link_bytes`` bytes
per cycle (a power of two: 1 behind a UART, a weight row or more in the simulated board); byte 0 of
a word is the earliest byte on the wire. Every unit below is padded with zero bytes up to a whole
number of link words, so every frame starts on a word boundary:

* a header is 16 bytes, padded to ``ceil(16 / link_bytes)`` words;
* each payload *vector* (one activation column slice, one weight row, one result row) is padded on
  its own to a whole number of words.

With ``link_bytes = 1`` nothing is ever padded. Between frames the device skips any word whose
first byte is not ``MAGIC`` (so all-zero pad words are idle fill).

IDENTIFY is readable before the host knows ``link_bytes``: the host sends the 16-byte IDENTIFY
header followed by 48 zero bytes (64 bytes in all, a whole number of words for every allowed link
width); the device answers, then skips the zero words. Every device advertises at least 64 bytes of
receive buffer, so these 64 bytes never need credit.

Header (16 bytes, little-endian)
--------------------------------
=====  =====  ===========================================================================
bytes  field  meaning
=====  =====  ===========================================================================
0      magic  ``MAGIC`` (0xA5)
1      op     command opcode; replies set bit 7 (``REPLY``)
2      status 0 in commands; a reply's `Status`
3      check  chosen so that the 16 header bytes sum to 0 modulo 256
4-7    arg0   u32
8-11   arg1   u32
12-15  arg2   u32
=====  =====  ===========================================================================

A header whose check byte is wrong gets a ``BAD_CHECK`` error reply and is dropped; the device then
looks for ``MAGIC`` again on the next word. Any error reply leaves the device ready for the next
command (payload that followed a rejected header is skipped as non-``MAGIC`` words).

Commands and replies
--------------------
``IDENTIFY`` (args unused)
    Reply: header with arg0 = 32 (payload bytes), arg1 = ``link_bytes`` (so the host can find
    the padding) and arg2 = the device's count of received bytes once it had taken the IDENTIFY
    header (the base for later CREDIT counts, whatever came before), then the 32-byte
    configuration (`Config.identify_payload`, which lists the weight formats carried), padded to
    whole words.
``LOAD_A`` arg0 = N, arg1 = K, arg2 = activation format (0: int8; 1: int8 in 32-blocks)
    Payload: the activations A (N×K int8) in row tiles of ``rows``: for tile ``i`` and each k in
    0..K-1 one vector of ``min(rows, N - i*rows)`` bytes ``A[i*rows + r, k]``. Reply: header
    with arg0 = N, arg1 = K once the payload is stored. Limits: 1 ≤ N ≤ 65535, 1 ≤ K ≤ max_k,
    ``ceil(N / rows) * K ≤ act_depth``.
    In 32-blocks (devices that carry a block format; K a multiple of 32), each run of 32 vectors
    of a row tile (k = 32b .. 32b+31) is preceded by a *scale vector*: the binary16 scale of each
    of the tile's rows for block b, 2 bytes a row (little-endian), padded to whole words. Values
    should lie in [-127, 127]. A scale that is inf or NaN gets a ``BAD_SCALE`` reply (the payload
    is still consumed; nothing counts as loaded).
``GEMM`` arg0 = N, arg1 = K, arg2 = M | format << 24
    Multiplies the loaded A by W (K×M); N and K must match the last ``LOAD_A``. The weight
    format (`Format`) must be one the device carries (IDENTIFY) and match the activations: int8
    with int8 activations, a block format with block activations (else ``BAD_FORMAT``).
    int8 payload: W in column tiles of ``cols``: for tile ``j`` and each k, one vector of
    ``min(cols, M - j*cols)`` bytes ``W[k, j*cols + c]``. Results are int32.
    Block-format payload: the weight tensor's GGUF blocks, unchanged, in column tiles: for tile
    ``j`` and each block index b (K/32 of them), the blocks b of output channels ``j*cols + c``,
    c < ``min(cols, M - j*cols)``, back to back (a *group*), padded to whole words. Results are
    binary32 bit patterns computed as `systolica.host.block_formats` specifies; a block scale
    that is inf or NaN makes the GEMM reply's status ``BAD_SCALE``.
    Each weight crosses the link once. Replies: one ``RESULT`` frame per (row tile i, column
    tile j), j-major, then the ``GEMM`` reply.
``RESULT`` (device only) arg0 = i, arg1 = j, arg2 = rows_valid | cols_valid << 16
    Payload: ``rows_valid`` vectors, each ``cols_valid`` int32 or binary32 (little-endian) of
    C[i*rows + r, ...].
``GEMM`` reply: arg0, arg1 = device cycles (low, high 32 bits) from the GEMM header being accepted
    to the last RESULT word being sent; arg2 = M.
``CREDIT`` (device only) arg0 = total bytes the device has taken out of its receive buffer, modulo
    2**32. The host never has more than ``rx_bytes`` (from IDENTIFY) unacknowledged bytes in flight.
    The device sends CREDIT whenever it has consumed ``rx_bytes / 2`` bytes since the last one, and
    whenever it waits for a header with an empty receive buffer and unreported bytes.
``ERROR`` reply: op = the offending opcode | REPLY, status = the `Status` code, arg0 = arg0 of the
    rejected header.
"""

import enum
import struct

__all__ = [
    "HEADER_BYTES",
    "IDENTIFY_PAD",
    "MAGIC",
    "REPLY",
    "Format",
    "Op",
    "Status",
    "check_byte",
    "pack_header",
    "pad_to_words",
    "padded",
    "unpack_header",
    "words",
]

MAGIC = 0xA5
REPLY = 0x80
HEADER_BYTES = 16
IDENTIFY_PAD = 64
_HEADER = struct.Struct("<BBBBIII")


class Op(enum.IntEnum):
    IDENTIFY = 0x01
    LOAD_A = 0x02
    GEMM = 0x03
    RESULT = 0x10
    CREDIT = 0x11


class Status(enum.IntEnum):
    OK = 0
    BAD_CHECK = 1
    BAD_OPCODE = 2
    BAD_LENGTH = 3
    NOT_LOADED = 4
    BAD_SCALE = 5      # a binary16 scale is inf or NaN
    BAD_FORMAT = 6     # a weight or activation format this device does not carry


class Format(enum.IntEnum):
    """Weight formats (`systolica.host.block_formats` has their layouts and arithmetic)."""

    INT8 = 0    # int8 weights, int32 results (scales applied by the host)
    Q8_0 = 1    # GGUF blocks: binary16 d, 32 int8
    Q4_0 = 2    # GGUF blocks: binary16 d, 16 bytes of nibbles (offset 8)
    Q4_1 = 3    # GGUF blocks: binary16 d, binary16 m, 16 bytes of nibbles


BLOCK = 32   # elements per block along K, of the GGUF weight blocks and the activations alike

# Bytes of one 32-weight block of each GGUF format on the link, exactly as in the model file.
BLOCK_BYTES = {Format.Q8_0: 34, Format.Q4_0: 18, Format.Q4_1: 20}


def check_byte(header_without_check):
    """The check byte that makes the 16 header bytes sum to 0 modulo 256."""
    return (-sum(header_without_check)) & 0xFF


def pack_header(op, arg0=0, arg1=0, arg2=0, *, status=0):
    """Pack a 16-byte header with its check byte."""
    raw = _HEADER.pack(MAGIC, op, status, 0, arg0, arg1, arg2)
    return _HEADER.pack(MAGIC, op, status, check_byte(raw), arg0, arg1, arg2)


def unpack_header(data):
    """Unpack a 16-byte header to ``(op, status, arg0, arg1, arg2)``; raises ValueError if the
    magic or check byte is wrong."""
    if len(data) != HEADER_BYTES:
        raise ValueError(f"a header is {HEADER_BYTES} bytes, not {len(data)}")
    magic, op, status, _, arg0, arg1, arg2 = _HEADER.unpack(data)
    if magic != MAGIC:
        raise ValueError(f"bad magic byte 0x{magic:02x} in header {bytes(data).hex()}")
    if sum(data) & 0xFF:
        raise ValueError(f"bad check byte in header {bytes(data).hex()}")
    return op, status, arg0, arg1, arg2


def words(nbytes, link_bytes):
    """Link words that ``nbytes`` bytes take, the last one padded."""
    return -(-nbytes // link_bytes)


def padded(nbytes, link_bytes):
    """Bytes that ``nbytes`` bytes take on the link, padded to whole words."""
    return words(nbytes, link_bytes) * link_bytes


def pad_to_words(data, link_bytes):
    """Pad ``data`` with zero bytes to a whole number of ``link_bytes`` words."""
    return bytes(data) + bytes(-len(data) % link_bytes)
