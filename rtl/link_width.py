"""Byte streams to and from a wider link: a UART's bytes in front of an accelerator whose link
moves ``link_bytes`` bytes a beat.

The protocol's words (`systolica.protocol`) are ``link_bytes`` bytes with byte 0 the earliest on
the wire, so `BytePacker` fills a word from its low byte up and `ByteSerializer` sends a word
from its low byte up. A board whose accelerator has a 16-byte link (the DRAM word, which
`Config.dram_mib` requires) puts them between its UART and the accelerator; the host pads every
unit to whole words as IDENTIFY's reply tells it.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BytePacker", "ByteSerializer"]


def _check(word_bytes):
    if not isinstance(word_bytes, int) or isinstance(word_bytes, bool) or word_bytes < 1:
        raise TypeError(f"word_bytes must be a positive integer, not {word_bytes!r}")


class BytePacker(wiring.Component):
    """Packs ``word_bytes`` bytes into a word, the first byte received in the low byte.

    The word is held in an output register of its own, so the next word's bytes keep arriving
    while a full word waits to be taken (a UART receiver has no room for a byte it cannot hand
    on). A byte is taken every cycle but one per word.

    Parameters
    ----------
    word_bytes : int
        Bytes in a word.

    Attributes
    ----------
    i : In(stream.Signature(8))
        Bytes.
    o : Out(stream.Signature(8 * word_bytes))
        Words.
    """

    def __init__(self, word_bytes):
        _check(word_bytes)
        self.word_bytes = word_bytes
        super().__init__({"i": In(stream.Signature(8)),
                          "o": Out(stream.Signature(8 * word_bytes))})

    def elaborate(self, platform):
        m = Module()
        n = self.word_bytes
        gathered = Signal(8 * n)
        count = Signal(range(n + 1))

        m.d.comb += self.i.ready.eq(count != n)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If((count == n) & (~self.o.valid | self.o.ready)):
            m.d.sync += [self.o.payload.eq(gathered), self.o.valid.eq(1), count.eq(0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [gathered.word_select(count, 8).eq(self.i.payload), count.eq(count + 1)]
        return m


class ByteSerializer(wiring.Component):
    """Sends each ``word_bytes``-byte word as its bytes, the low byte first.

    Parameters
    ----------
    word_bytes : int
        Bytes in a word.

    Attributes
    ----------
    i : In(stream.Signature(8 * word_bytes))
        Words.
    o : Out(stream.Signature(8))
        Bytes.
    """

    def __init__(self, word_bytes):
        _check(word_bytes)
        self.word_bytes = word_bytes
        super().__init__({"i": In(stream.Signature(8 * word_bytes)),
                          "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        n = self.word_bytes
        word = Signal(8 * n)
        index = Signal(range(n))

        m.d.comb += [self.i.ready.eq(~self.o.valid), self.o.payload.eq(word.word_select(index, 8))]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [word.eq(self.i.payload), index.eq(0), self.o.valid.eq(1)]
        with m.If(self.o.valid & self.o.ready):
            with m.If(index == n - 1):
                m.d.sync += self.o.valid.eq(0)
            with m.Else():
                m.d.sync += index.eq(index + 1)
        return m
