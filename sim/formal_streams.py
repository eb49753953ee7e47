"""Formal check: the whole accelerator keeps the stream rules on its link output.

The host (`formal_props.free_host`) offers any words on ``link_rx`` under the stream rules (it
holds a word and its valid until the device takes it) and takes ``link_tx`` words whenever it
likes. Whatever it sends (garbage, headers with good or bad CRCs, frames cut off), the device
must keep the same rules on ``link_tx``: once ``valid`` is high it stays high until ``ready``,
and the word does not change meanwhile (a host reading a UART has no second chance).
"""

from amaranth.hdl import Assert, Cover, Elaboratable, Module

from systolica.rtl.top import Accelerator

from .formal_props import elaborate_once, free_host, stream_rules

__all__ = ["AcceleratorStreams"]


class AcceleratorStreams(Elaboratable):
    """`Accelerator` at ``config`` with a free host; asserts the stream rules on ``link_tx``.

    Covers (for ``cover`` mode): the device offers a word the host does not take yet; the
    framer takes a CREDIT header.
    """

    def __init__(self, config):
        self.config = config

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = Accelerator(self.config)
        top = elaborate_once(dut, platform)
        free_host(m, dut, 8 * self.config.link_bytes)
        stream_rules(m, dut.link_tx, Assert, "link_tx")
        adapter = top.submodules.adapter
        m.d.comb += [
            Cover(dut.link_tx.valid & ~dut.link_tx.ready),
            Cover(adapter.credit.credit_sent),
        ]
        return m
