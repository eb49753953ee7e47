"""The protocol's frames as gateware layouts (the format itself is written down in `protocol`)."""

from amaranth.lib import data

from systolica.protocol import LINE_COUNT_BITS

__all__ = ["Header", "Reply"]


class Header(data.Struct):
    """A 32-byte frame header as it is on the link, byte 0 (``magic``) first."""

    magic: 8
    op: 8
    status: 8
    tag: 8
    arg0: 32
    arg1: 32
    arg2: 32
    length: 32
    info: 32
    arg3: 32
    crc: 32


class Reply(data.Struct):
    """A reply the header parser asks the framer to send (header only, or IDENTIFY's)."""

    op: 8
    status: 8
    tag: 8
    arg0: 32
    arg1: 32
    arg2: 32
    info: 2 * LINE_COUNT_BITS     # IDENTIFY's: the line's error counts; else 0
