"""The protocol's frames as gateware layouts (the format itself is written down in `protocol`)."""

from amaranth.lib import data

__all__ = ["Header", "Reply"]


class Header(data.Struct):
    """A 16-byte frame header as it arrives, byte 0 (``magic``) first."""

    magic: 8
    op: 8
    status: 8
    check: 8
    arg0: 32
    arg1: 32
    arg2: 32


class Reply(data.Struct):
    """A reply the header parser asks the framer to send (header only, or IDENTIFY's)."""

    op: 8
    status: 8
    arg0: 32
    arg1: 32
    arg2: 32
