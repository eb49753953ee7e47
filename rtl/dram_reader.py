"""A DMA reader: runs of consecutive DRAM words, read on a controller's native port, as a stream.

A request names a word address and a number of words; the reader issues one read command per
word (`rtl.dram_controller`'s native port: one 128-bit word per command) and puts the words on
its output stream in address order, with ordinary valid/ready backpressure there.

The native port's read data cannot be held back: ``rdata`` is a fixed-latency pipeline of the
accepted read commands and LiteDRAM ignores its ``ready``. Every word the DRAM returns must
therefore find room in the reader's FIFO, and the only thing that guarantees it is a
reservation: a read command is offered only while the reads in flight plus the words in the
FIFO are fewer than the FIFO's depth (LiteDRAM's ``LiteDRAMDMAReader`` keeps the same count).
With a consumer that keeps up, up to ``depth`` reads are in flight, enough for the DRAM, not the
reader, to set the pace (16 reach the full rate of the ECP5-like model, see
docs/litedram-notes.md).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .dram_controller import check_widths, cmd_layout

__all__ = ["DramReader", "request_layout"]


def request_layout(addr_width, count_width):
    """A DMA request: the first word's address and the number of consecutive words."""
    return data.StructLayout({"addr": addr_width, "count": count_width})


def check_arguments(addr_width, data_width, count_width, depth, min_depth):
    """The checks the reader and the writer share; returns ``count_width`` (default
    ``addr_width``)."""
    count_width = addr_width if count_width is None else count_width
    check_widths(data_width, addr_width=addr_width, count_width=count_width, depth=depth)
    if depth < min_depth:
        raise ValueError(f"depth must be at least {min_depth}, not {depth}")
    return count_width


class DramReader(wiring.Component):
    """Reads requested runs of words from a DRAM controller's native port into a stream.

    Requests are taken one after another: the next one as the current one's last read command
    is accepted (a request of ``count`` 0 is taken and does nothing). Addresses wrap around at
    ``2**addr_width``.

    Parameters
    ----------
    addr_width : int
        Width of a word address (25 for 512 MiB of 128-bit words).
    data_width : int
        Width of a word (128).
    count_width : int
        Width of a request's word count (default ``addr_width``).
    depth : int
        Words in the FIFO, and so the most reads in flight (default 32). At least 3: a
        ``SyncFIFOBuffered`` of depth 2 refuses a write in the cycle its only word moves from
        its memory to its output register, which the reservation cannot see.

    Attributes
    ----------
    req : In(stream.Signature(request_layout(addr_width, count_width)))
        Requests: ``addr``, the first word's address, and ``count``, the number of words.
    data : Out(stream.Signature(data_width))
        The words read, in request and address order.
    cmd : Out(stream.Signature(cmd_layout(addr_width)))
        Read commands (``we`` is 0), to the controller's ``cmd``.
    rdata : In(stream.Signature(data_width, always_ready=True))
        The controller's read data, taken whenever valid.
    busy : Out(1)
        A request is being issued, or one of its reads is in flight or its word in the FIFO.
    """

    def __init__(self, *, addr_width=25, data_width=128, count_width=None, depth=32):
        count_width = check_arguments(addr_width, data_width, count_width, depth, min_depth=3)
        self._depth = depth
        super().__init__({
            "req": In(stream.Signature(request_layout(addr_width, count_width))),
            "data": Out(stream.Signature(data_width)),
            "cmd": Out(stream.Signature(cmd_layout(addr_width))),
            "rdata": In(stream.Signature(data_width, always_ready=True)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self._depth
        m.submodules.fifo = buffer = fifo.SyncFIFOBuffered(width=len(self.data.payload),
                                                           depth=depth)
        addr = Signal.like(self.req.payload.addr)
        left = Signal.like(self.req.payload.count)      # read commands still to issue
        reserved = Signal(range(depth + 1))             # reads in flight + words in the FIFO

        issue = self.cmd.valid & self.cmd.ready
        take = self.data.valid & self.data.ready
        m.d.comb += [
            self.cmd.valid.eq((left != 0) & (reserved != depth)),
            self.cmd.payload.we.eq(0),
            self.cmd.payload.addr.eq(addr),
            self.req.ready.eq((left == 0) | ((left == 1) & issue)),
        ]
        with m.If(issue):
            m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
        with m.If(self.req.valid & self.req.ready):
            m.d.sync += [addr.eq(self.req.payload.addr), left.eq(self.req.payload.count)]
        with m.If(issue & ~take):
            m.d.sync += reserved.eq(reserved + 1)
        with m.Elif(take & ~issue):
            m.d.sync += reserved.eq(reserved - 1)

        m.d.comb += [
            buffer.w_data.eq(self.rdata.payload),
            buffer.w_en.eq(self.rdata.valid),
            self.data.payload.eq(buffer.r_data),
            self.data.valid.eq(buffer.r_rdy),
            buffer.r_en.eq(self.data.ready),
            self.busy.eq((left != 0) | (reserved != 0)),
        ]
        return m
