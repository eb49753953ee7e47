"""Device end of the link: the receive buffer the host's credit refers to, and credit bookkeeping."""

from amaranth.hdl import Module, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from .block_ram_fifo import BlockRamFifo
from .control import CreditSignature
from .skid_buffer import SkidBuffer

__all__ = ["LinkAdapter"]


class LinkAdapter(wiring.Component):
    """Moves ``link_bytes`` bytes per cycle each way between the link and the decoder/framer.

    Received words pass through a FIFO of ``rx_fifo_words`` words: that buffer is what the device
    advertises as credit. Words to send pass through a 4-word FIFO. ``consumed`` counts the bytes taken out of it (modulo 2**32);
    ``credit_due`` asks the framer to send a CREDIT frame, and ``credit_sent`` (pulsed by the
    framer when it takes ``consumed`` into a CREDIT header) marks the count as reported.
    ``rx_empty`` says no received word is waiting.

    Parameters
    ----------
    config : Config
        Provides ``link_bytes``, ``rx_fifo_words`` and ``rx_bytes``.
    """

    def __init__(self, config):
        self._config = config
        width = 8 * config.link_bytes
        super().__init__({
            "link_rx": In(stream.Signature(width)),
            "link_tx": Out(stream.Signature(width)),
            "rx": Out(stream.Signature(width)),
            "tx": In(stream.Signature(width)),
            "decoder_idle": In(1),
            "credit": Out(CreditSignature()),
            "rx_empty": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m.submodules.rx_fifo = rx_fifo = BlockRamFifo(8 * cfg.link_bytes, cfg.rx_fifo_words)
        connect(m, wiring.flipped(self.link_rx), rx_fifo.w)
        # A skid buffer keeps the FIFO's read data and read enable off the decoder's logic (the
        # decoder's ready, which depends on its state, the engine and the framer, was the ECP5
        # build's critical path into the FIFO). It and the FIFO's output queue hold words beyond
        # the advertised credit.
        m.submodules.rx_reg = rx_reg = SkidBuffer(8 * cfg.link_bytes)
        connect(m, rx_fifo.r, rx_reg.i)
        connect(m, rx_reg.o, wiring.flipped(self.rx))
        # A small transmit FIFO registers the path from the framer's word select to the link.
        m.submodules.tx_fifo = tx_fifo = fifo.SyncFIFOBuffered(
            width=8 * cfg.link_bytes, depth=4)
        connect(m, wiring.flipped(self.tx), tx_fifo.w_stream)
        connect(m, tx_fifo.r_stream, wiring.flipped(self.link_tx))

        reported = Signal(32)
        with m.If(self.rx.valid & self.rx.ready):
            m.d.sync += self.credit.consumed.eq(self.credit.consumed + cfg.link_bytes)
        with m.If(self.credit.credit_sent):
            m.d.sync += reported.eq(self.credit.consumed)

        m.d.comb += self.rx_empty.eq(rx_fifo.empty & ~rx_reg.o.valid)

        # credit_due is registered (it starts a long path in the framer); it drops the cycle
        # after a CREDIT is taken and is recomputed from the new count the cycle after that.
        unreported = Signal(32)
        m.d.comb += unreported.eq(self.credit.consumed - reported)
        with m.If(self.credit.credit_sent):
            m.d.sync += self.credit.credit_due.eq(0)
        with m.Else():
            m.d.sync += self.credit.credit_due.eq(
                (unreported >= cfg.rx_bytes // 2) |
                ((unreported != 0) & self.rx_empty & self.decoder_idle))
        return m
