"""One DRAM controller's native port shared by a writer and a reader (`DramWriter`,
`DramReader`).

Only the commands need sharing: the write data come only from the writer and the read data go
only to the reader, so ``wdata`` and ``rdata`` pass straight through, and the port's own rules
(write data taken in write-command order, read data returned in read-command order) hold for
each side as they would alone. The commands of the two sides are interleaved in the order
granted, so a read of a word whose write command was accepted before it returns the written
data; but the two sides know nothing of each other's progress, and whoever uses both at once
on the same words must order them (the accelerator writes weights first and reads them later).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .dram_controller import check_widths, cmd_layout, wdata_layout

__all__ = ["DramPortMux"]


class DramPortMux(wiring.Component):
    """Passes the writer's or the reader's commands to the port, one side at a time.

    The side granted keeps the port while it offers a command; when it offers none and the other
    side does, the grant passes to the other side for the next cycle (a switch costs a cycle).
    A side that never pauses keeps the port: this is a switch between phases (upload, then
    read), not a fair arbiter. Commands from the writer go out as writes and from the reader as
    reads, whatever their ``we``.

    Parameters
    ----------
    addr_width : int
        Width of a word address (25).
    data_width : int
        Width of a word (128).

    Attributes
    ----------
    write : In(wiring.Signature({"cmd": Out(...), "wdata": Out(...)}))
        The writer's side: its write commands (``cmd_layout(addr_width)``) and its write data
        (``wdata_layout(data_width)``).
    read : In(wiring.Signature({"cmd": Out(...), "rdata": In(..., always_ready=True)}))
        The reader's side: its read commands and the read data, which it must always take.
    cmd : Out(stream.Signature(cmd_layout(addr_width)))
        To the controller's ``cmd``.
    wdata : Out(stream.Signature(wdata_layout(data_width)))
        To the controller's ``wdata``.
    rdata : In(stream.Signature(data_width, always_ready=True))
        From the controller's ``rdata``.
    """

    def __init__(self, *, addr_width=25, data_width=128):
        check_widths(data_width, addr_width=addr_width)
        cmd = stream.Signature(cmd_layout(addr_width))
        wdata = stream.Signature(wdata_layout(data_width))
        rdata = stream.Signature(data_width, always_ready=True)
        super().__init__({
            "write": In(wiring.Signature({"cmd": Out(cmd), "wdata": Out(wdata)})),
            "read": In(wiring.Signature({"cmd": Out(cmd), "rdata": In(rdata)})),
            "cmd": Out(cmd),
            "wdata": Out(wdata),
            "rdata": In(rdata),
        })

    def elaborate(self, platform):
        m = Module()
        sides = ((self.write.cmd, 1), (self.read.cmd, 0))
        grant = Signal()                        # 0: the writer, 1: the reader
        for index, (side, we) in enumerate(sides):
            other = sides[1 - index][0]
            with m.If(grant == index):
                m.d.comb += [
                    self.cmd.valid.eq(side.valid),
                    self.cmd.payload.addr.eq(side.payload.addr),
                    self.cmd.payload.we.eq(we),
                    side.ready.eq(self.cmd.ready),
                ]
                with m.If(~side.valid & other.valid):
                    m.d.sync += grant.eq(1 - index)
        wiring.connect(m, wiring.flipped(self.write.wdata), wiring.flipped(self.wdata))
        wiring.connect(m, wiring.flipped(self.rdata), wiring.flipped(self.read.rdata))
        return m
