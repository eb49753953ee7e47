"""The systolica link protocol, version 2: the one place the frame format is written down.

This module is plain Python (no Amaranth) so that the decoder (`rtl/decoder.py`), the reply framer
(`rtl/framer.py`) and the host (`host/`) all take their constants from here.

Byte stream and link words
--------------------------
The link is a byte stream in each direction. The device's link adapter moves ``link_bytes`` bytes
per cycle (a power of two, at most 32: 1 behind a UART, a weight row or more in the simulated
board); byte 0 of a word is the earliest byte on the wire. Every unit below is padded with zero
bytes up to a whole number of link words, so every frame starts on a word boundary:

* a header is 32 bytes (a whole number of words on every allowed link);
* each payload *vector* (one activation column slice, one weight row, one result row) is padded on
  its own to a whole number of words, but LOAD_A's activation vectors where they are packed
  (``LOAD_A`` below);
* a payload's *CRC word* is ``max(4, link_bytes)`` bytes.

Between frames the device skips words that are not the start of a valid header (all-zero pad
words are idle fill).

IDENTIFY is readable before the host knows ``link_bytes``: the host sends the 32-byte IDENTIFY
header followed by 32 zero bytes (64 bytes in all, a whole number of words for every allowed link
width); the device answers, then skips the zero words. Every device advertises at least 64 bytes of
receive buffer, so these 64 bytes never need credit.

Header (32 bytes, little-endian)
--------------------------------
=====  ======  =========================================================================
bytes  field   meaning
=====  ======  =========================================================================
0      magic   ``MAGIC`` (0xA5)
1      op      command opcode; replies set bit 7 (``REPLY``)
2      status  0 in commands; a reply's `Status`
3      tag     chosen by the host for each command; every reply to it carries the same tag
               (CREDIT frames, which answer no command, carry 0)
4-7    arg0    u32
8-11   arg1    u32
12-15  arg2    u32
16-19  length  bytes of payload after the header (whole words: the padded vectors), not
               counting its CRC word; 0 for a frame without payload
20-23  info    0 in commands and replies, but GEMM_DRAM's (below) and IDENTIFY's reply's: the line's error counts (bits 0-7
               bytes dropped for a low stop bit, 8-15 bytes dropped by an overrun, each
               since power-up and saturating at 255; always 0 on a link without a UART,
               such as the simulated board's pipe)
24-27  arg3    0, but GEMM_DRAM's (the stored payload's address)
28-31  crc     CRC-32 of bytes 0-27 (`crc32`)
=====  ======  =========================================================================

A frame with ``length > 0`` ends with a CRC word after its payload: ``max(4, link_bytes)``
bytes, zero but for its last four, which are the CRC-32 of every byte from the first payload
byte up to them (the payload's padding and the CRC word's leading zeros included).

The CRC is CRC-32/ISO-HDLC (polynomial 0x04C11DB7 reflected, initial and final XOR 0xFFFFFFFF:
Ethernet's and zlib's), stored little-endian. The gateware computes it with
`amaranth.lib.crc.catalog.CRC32_ISO_HDLC`, the host with `zlib.crc32` (the same function; a test
checks them against each other). Why this one: it catches every error of up to 32 bits in one
burst (a UART's bit flips and a byte garbled by noise are bursts of at most 8 bits), every error
of 1 to 5 bits in a 28-byte header (Hamming distance 6 up to 268 bits), every error of 1 to 3
bits in a payload up to 11 KB (distance 4 up to 91,607 bits) and of 1 or 2 bits in any longer
payload (weights of one GEMM reach megabytes), and all but 2⁻³² of the rest; and the host has it
at C speed in the standard library, which matters at 100 MB of weights a token. A check byte, as
in version 1, missed swapped bytes and one random header in 256.

Receiving: a candidate header is 32 bytes starting with ``MAGIC`` on a word boundary. One whose
CRC is wrong is dropped without a reply (nothing in it can be trusted, not even its tag), and the
search goes on from the candidate's next word, so a real header inside a failed candidate is
found. A header whose CRC is right but which the device rejects gets an error reply; then its
payload (``length`` bytes, and the CRC word if ``length > 0``) is skipped by its length, not
searched for headers. A ``length`` that is not a whole number of words is not skipped. An
accepted LOAD_A or GEMM takes the payload its arguments describe, then the CRC word: its
``length`` must say the same (a length that does not is a host error, which the CRC word, not
found where the device looks for it, turns into a ``BAD_CRC`` reply).

Idle abort: a frame that stops arriving (the device waits ``abort_cycles`` cycles, from
IDENTIFY, for its next word) is dropped: the device starts over, waiting for a header. A header
or a skipped payload in hand is dropped; an accepted LOAD_A loads nothing (the A loaded before
it is forgotten too); an accepted GEMM's payload is made up to its end, so its RESULT frames
still come (void) and the A stays loaded. Either then gets an ``ABORTED`` error reply with its
tag. A device built without the idle abort (``abort_cycles`` = 0 in IDENTIFY; a part too full
for it) keeps waiting for the rest: the host's resync then sends as many zero bytes as its
longest frame, which complete the frame (its payload fails the CRC check) and are then taken as
bytes between frames.

Commands and replies
--------------------
``IDENTIFY`` (args unused)
    Reply: header with arg0 = 32 (payload bytes), arg1 = ``link_bytes`` (so the host can find
    the padding) and arg2 = the device's count of received bytes once it had taken the IDENTIFY
    header (the base for later CREDIT counts, whatever came before), then the 32-byte
    configuration (`Config.identify_payload`, which lists the weight formats carried) and its
    CRC word.
``LOAD_A`` arg0 = N, arg1 = K, arg2 = activation format (0: int8; 1: int8 in 32-blocks)
    Payload: the activations A (N×K int8) in row tiles of ``rows``: for tile ``i`` and each k in
    0..K-1 one vector of ``min(rows, N - i*rows)`` bytes ``A[i*rows + r, k]``. On a device
    whose ``rows`` is smaller than a link word and divides it (`act_lanes`), the vectors are
    *packed* instead: each takes ``rows`` bytes (zeros for rows past N), ``link_bytes // rows``
    to a word, and only the tile's last word is padded (a scale vector, below, still takes whole
    words of its own); without packing a decode step's activation vector of 2 bytes took a
    16-byte word. Reply: header
    with arg0 = N, arg1 = K once the payload is stored and its CRC word checked. Limits:
    1 ≤ N ≤ 65535, 1 ≤ K ≤ max_k, ``ceil(N / rows) * K ≤ act_depth``.
    In 32-blocks (devices that carry a block format; K a multiple of 32), each run of 32 vectors
    of a row tile (k = 32b .. 32b+31) is preceded by a *scale vector*: the binary16 scale of each
    of the tile's rows for block b, 2 bytes a row (little-endian), padded to whole words. Values
    should lie in [-127, 127]. A scale that is inf or NaN gets a ``BAD_SCALE`` reply, a payload
    whose CRC is wrong a ``BAD_CRC`` reply (the payload is still consumed; nothing counts as
    loaded).
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
    tile j), j-major, then the ``GEMM`` reply. Results leave while weights still arrive, so a
    payload whose CRC word is wrong is known only at the end: the GEMM reply's status is then
    ``BAD_CRC``, and the host discards every RESULT of that GEMM.
``WRITE_DRAM`` arg0 = byte address in the device's DRAM (devices whose IDENTIFY reports DRAM)
    Payload: ``length`` bytes, stored from the address on exactly as received, then the CRC word.
    The address and ``length`` are multiples of ``DRAM_WORD_BYTES``, ``length`` is at most
    ``MAX_WRITE_DRAM`` and the range lies inside the DRAM (else ``BAD_LENGTH``; arg1 and arg2
    must be 0, else ``BAD_CHECK``). Reply (once the last word is in the DRAM): arg0 = the address;
    status ``BAD_CRC`` if the payload's CRC word was wrong (its bytes were stored all the same:
    write them again) or ``ABORTED``.
``GEMM_DRAM`` arg0, arg1, arg2 as GEMM's; arg3 = byte address of a *stored GEMM payload*;
    info = that payload's length
    A GEMM whose weights come from the device's DRAM instead of the link. A stored GEMM payload
    is the bytes a GEMM frame of these arguments carries after its header (its ``length``
    bytes, then its CRC word), written there with WRITE_DRAM. Nothing follows the header on the
    link (``length`` 0); info does not count the CRC word. The address and info are multiples of ``DRAM_WORD_BYTES`` and the
    payload with its CRC word lies inside the DRAM (else ``BAD_LENGTH``). The device reads it
    and takes it as it would take the payload from the link, CRC word included: the replies
    are a GEMM's (RESULT frames, then the reply with op ``GEMM | REPLY``; ``BAD_CRC`` if the
    stored bytes do not check), except that with N <= rows (one row tile: a decode step) all
    the results come in one RESULT frame, a *whole frame*: arg0 = arg1 = 0, arg2 = N | M << 16,
    its payload every column tile's in turn (for tile j, N vectors of its
    ``min(cols, M - j*cols)`` values, each in whole words), then the CRC word. (It saves a
    header and a CRC word a column tile; a GEMM must not, since the device sends no CREDIT
    while a frame is under way and a GEMM's weights need credit to arrive.) A stored payload shorter than the GEMM takes is made up with
    zero words (its CRC fails); one longer is read to its end and dropped. A rejected GEMM_DRAM
    gets an error reply with op ``GEMM_DRAM | REPLY``.
    *Pair sums*: on a device whose IDENTIFY sets `Feature.PAIR_SUM`, a GEMM_DRAM in a block
    format may set ``PAIR_SUM`` in arg2 (bit 23; M stays bits 0-15). The device then adds the
    binary32 results of rows 2t and 2t+1 of each row tile (`systolica.fp32_model.f32_add`:
    round to nearest even, flush-to-zero) and sends only the sums: a row tile's RESULT frame
    has half its rows (row r of tile i is output row ``i * rows / 2 + r``), a whole frame's
    arg2 says N/2, and the GEMM reply's arg2 is still M. The host puts an activation's two int8
    terms in rows 2t and 2t+1, so the terms' sum, not each term, crosses the link. N must be
    even (else ``BAD_LENGTH``, as is the flag on a device without the feature, on a GEMM or
    on int8 weights).
    *Argmax*: on a device whose IDENTIFY sets `Feature.ARGMAX`, a GEMM_DRAM in a block format
    whose results are one row (N = 1, or N = 2 with ``PAIR_SUM``) may set ``ARGMAX`` in arg2
    (bit 22; else ``BAD_LENGTH``). Instead of the row, the device sends one RESULT frame with
    arg0 = arg1 = 0, arg2 = 1 | 2 << 16 and a payload of two u32: the column of the largest
    result and that result's binary32 pattern. Results are compared as numbers, -0 equal to +0
    (`systolica.fp32_model.f32_order_key`), and the first of equal ones wins. An LM head's
    greedy token is then 16 bytes instead of 4·M.
``DRAM_CHECK`` arg0 = byte address, arg1 = length (devices with DRAM)
    The device reads ``length`` bytes from the address and the CRC word after them (what a
    WRITE_DRAM of a payload followed by its CRC word stored, such as a stored GEMM payload) and
    checks that the CRC word is theirs: the reply's status is OK or ``BAD_CRC``, its arg0 the
    address. The address and length are multiples of ``DRAM_WORD_BYTES``, the length nonzero,
    and the bytes with the CRC word lie inside the DRAM (else ``BAD_LENGTH``); arg2 must be 0
    and nothing follows the header (``length`` 0). This is how the host checks an upload by a
    CRC read back from the device, without reading the bytes back over the link.
``RESULT`` (device only) arg0 = i, arg1 = j, arg2 = rows_valid | cols_valid << 16
    Payload: ``rows_valid`` vectors, each ``cols_valid`` int32 or binary32 (little-endian) of
    C[i*rows + r, ...] (of pair sums: C[i*rows/2 + r, ...]), then the CRC word; a GEMM_DRAM's whole frame (``cols_valid`` = M, up to
    65535) has such vectors for each column tile in turn (`result_bytes`).
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
