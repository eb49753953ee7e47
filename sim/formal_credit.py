"""Formal check: the device never advertises more receive buffer than it has.

Protocol (`systolica.protocol`, CREDIT): the host never has more than ``rx_bytes`` =
``rx_fifo_words * link_bytes`` bytes in flight beyond the count of bytes the device has reported
consumed (CREDIT frames; the IDENTIFY reply). Here the host is held to a weaker rule: the words
it has had taken minus the words the device has *actually* consumed (the link adapter's
``credit.consumed`` / ``link_bytes``, which runs ahead of any report of it) stay within
``rx_fifo_words``; it may also offer words at any moment otherwise allowed by the stream rules
and read the device's output whenever it likes. Under that host the check asserts:

* the device takes every word the host offers (``link_rx.ready``): the receive FIFO always has
  room for what the credit allows, so a host that keeps to the credit never stalls the link
  (a UART cannot be stalled: a refused byte is lost);
* the consumed count, at all times and in particular when the framer takes it into a CREDIT
  header (``credit_sent``), is at most the words taken out of the receive FIFO × ``link_bytes``
  (the device reports only room it has freed) and at most the words received × ``link_bytes``.

The whole `Accelerator` is checked, with the link adapter's FIFO reached inside it. (The device
holds more than it advertises: beyond the FIFO's ``rx_fifo_words`` words of RAM, its 4-word
output queue and the 2-word skid buffer after it; with an 8-word FIFO, a RAM 6 words short of
the credit is refused a word within 15 cycles, one 4 words short is not within 18.)
"""

from amaranth.hdl import Assert, Assume, Cover, Elaboratable, Module, Signal

from systolica.rtl.top import Accelerator

from .formal_props import elaborate_once, free_host

__all__ = ["AcceleratorCredit"]


class AcceleratorCredit(Elaboratable):
    """`Accelerator` at ``config`` with a host that keeps to its credit; asserts that the
    device keeps its side of it.

    ``host_keeps_credit=False`` drops the host's assumption: the consumed-count assertions
    must hold for any host, and the ready assertion is then made only for words that the
    credit allows.
    """

    def __init__(self, config, *, host_keeps_credit=True):
        self.config = config
        self.host_keeps_credit = host_keeps_credit

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        m.submodules.dut = dut = Accelerator(cfg)
        top = elaborate_once(dut, platform)
        adapter = top.submodules.adapter
        rx_fifo = elaborate_once(adapter, platform).submodules.rx_fifo
        free_host(m, dut, 8 * cfg.link_bytes)

        rx = dut.link_rx
        credit = adapter.credit
        taken = Signal(32)          # words the device has taken from the link
        freed = Signal(32)          # words read out of the receive FIFO
        m.d.sync += [
            taken.eq(taken + (rx.valid & rx.ready)),
            freed.eq(freed + (rx_fifo.r.valid & rx_fifo.r.ready)),
        ]
        shift = cfg.link_bytes.bit_length() - 1
        consumed_words = Signal(32)
        in_flight = Signal(32)      # taken but not yet consumed
        m.d.comb += [
            consumed_words.eq(credit.consumed >> shift),
            in_flight.eq(taken - consumed_words),
        ]
        allowed = in_flight < cfg.rx_fifo_words
        if self.host_keeps_credit:
            m.d.comb += Assume(~rx.valid | allowed)
        m.d.comb += [
            Assert(~(rx.valid & allowed) | rx.ready,
                   "link_rx: the device refused a word that the credit allows"),
            Assert(credit.consumed <= freed * cfg.link_bytes,
                   "consumed counts bytes not yet read out of the receive FIFO"),
            Assert(credit.consumed <= taken * cfg.link_bytes,
                   "consumed counts bytes never received"),
        ]
        with m.If(credit.credit_sent):
            m.d.comb += Assert(credit.consumed <= freed * cfg.link_bytes,
                               "a CREDIT frame reports room the receive FIFO has not freed")
        m.d.comb += [
            Cover(rx.valid & (in_flight == cfg.rx_fifo_words - 1)),
            Cover(credit.credit_sent & (consumed_words != 0)),
        ]
        return m
