"""Header window: the last 32 bytes of received link words, searched for a header whose CRC holds."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from systolica import protocol

from .control import CrcPortSignature, crc_delay, crc_processor
from .frame_layouts import Header

__all__ = ["HeaderWindow"]


class HeaderWindow(wiring.Component):
    """Finds the next valid header (see `protocol`) in the received words.

    Words shift through a window of one header's length, from the first word that starts with
    ``MAGIC`` on. When that word has reached the window's front, the window's CRC is worked out
    by rotating it once through a CRC-32 `Processor` (one word a cycle). A window that leaves
    CRC-32's residue is a header: ``found`` holds it until ``take``. One that does not is left
    as it is and the next word slides in, so a header that starts inside a failed candidate is
    found: every word starting with ``MAGIC`` gets its check once it reaches the front.

    Ports
    -----
    rx : stream of link words in; taken while ``hunting`` and no header is found.
    hunting : in; words may be taken.
    header : out; the window as a `Header` (valid with ``found``, and held until words are taken
        again).
    found : out; ``header`` is a header whose CRC holds.
    take : in; the header has been taken (with ``found``): the window starts over.
    clear : in; drop the words in the window (the idle abort): it starts over.
    idle : out; no word starting with ``MAGIC`` has been taken since the last header.
    crc : (``shared_crc``) `CrcPortSignature` to a CRC processor outside (shared), not its own.
    """

    def __init__(self, config, *, shared_crc=False):
        self._config = config
        super().__init__({
            "rx": In(stream.Signature(8 * config.link_bytes)),
            "hunting": In(1),
            "header": Out(Header),
            "found": Out(1),
            "take": In(1),
            "clear": In(1),
            "idle": Out(1),
            **({"crc": Out(CrcPortSignature(8 * config.link_bytes))} if shared_crc else {}),
        })

    def elaborate(self, platform):
        m = Module()
        lb = self._config.link_bytes
        width = 8 * lb
        hw = protocol.words(protocol.HEADER_BYTES, lb)
        assert hw * lb == protocol.HEADER_BYTES, "a header must be a whole number of words"
        word = self.rx.payload

        win = Signal(8 * protocol.HEADER_BYTES)       # word 0 (the oldest) in the low bits
        # Words in the window from the one that started it (with MAGIC) on, at most `hw`.
        count = Signal(range(hw + 1))
        step = Signal(range(hw))                      # the rotation's word
        crc = crc_processor(m, self, width)
        m.d.comb += [
            self.header.eq(win),
            self.idle.eq(count == 0),
            crc.data.eq(win[:width]),
        ]

        def shifted(top):
            return Cat(win[width:], top) if hw > 1 else top

        counting = (count != 0) | (word[:8] == protocol.MAGIC)
        # After this word: whether the window is whole and starts with MAGIC.
        front = win.word_select(1, width)[:8] if hw > 1 else word[:8]
        whole = (count >= hw - 1) & counting & (front == protocol.MAGIC)

        with m.FSM():
            with m.State("FILL"):
                m.d.comb += self.rx.ready.eq(self.hunting)
                with m.If(self.rx.valid & self.rx.ready):
                    m.d.sync += win.eq(shifted(word))
                    with m.If(counting & (count != hw)):
                        m.d.sync += count.eq(count + 1)
                    with m.If(whole):
                        m.d.sync += step.eq(0)
                        m.next = "CRC"
                with m.If(self.clear):
                    m.d.sync += count.eq(0)
                    m.next = "FILL"

            with m.State("CRC"):
                # Rotate the window once through the CRC; it is back in place at the end.
                m.d.comb += [crc.valid.eq(1), crc.start.eq(step == 0)]
                m.d.sync += [win.eq(shifted(win[:width])), step.eq(step + 1)]
                with m.If(step == hw - 1):
                    m.next = "SETTLE" if crc_delay(self) else "VERDICT"

            if crc_delay(self):
                with m.State("SETTLE"):         # the last word reaches the shared processor
                    m.next = "VERDICT"

            with m.State("VERDICT"):
                with m.If(crc.match_detected):
                    m.next = "FOUND"
                with m.Else():
                    m.next = "FILL"

            with m.State("FOUND"):
                m.d.comb += self.found.eq(1)
                with m.If(self.take):
                    m.d.sync += count.eq(0)
                    m.next = "FILL"
        return m
