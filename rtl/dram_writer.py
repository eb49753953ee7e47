"""A DMA writer: a stream of words, written as runs of consecutive words on a DRAM controller's
native port.

A request names a word address and a number of words; the writer takes that many words from its
data stream and issues one write command per word (`rtl.dram_controller`'s native port: one
128-bit word per command, every byte enabled).

The native port takes write data without a handshake of its own: ``wdata.ready`` rises a fixed
number of cycles after the controller sends a write command to the DRAM, and the controller
takes ``wdata.payload`` then, valid or not. The writer therefore puts each word into its FIFO
before offering the word's command, offers a command only while the FIFO's output shows a word,
and shows the oldest word not yet taken on ``wdata`` until ``wdata.ready`` takes it: when the
controller takes the data of a write, it is on ``wdata`` (LiteDRAM's ``LiteDRAMDMAWriter``
instead enqueues a word in the cycle its command is accepted, relying on that latency).
Words of several writes may be in the FIFO at once, commanded or not, so commands follow one
another at the DRAM's pace.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .dram_controller import cmd_layout, wdata_layout
from .dram_reader import check_arguments, request_layout

__all__ = ["DramWriter"]


class DramWriter(wiring.Component):
    """Writes words from a stream to requested runs of a DRAM controller's native port.

    Requests are taken one after another: the next one once the current one's last word is in
    the FIFO and its command is accepted (a request of ``count`` 0 is taken and does nothing,
    not even ``done``). Addresses wrap around at ``2**addr_width``.

    Parameters
    ----------
    addr_width : int
        Width of a word address (25 for 512 MiB of 128-bit words).
    data_width : int
        Width of a word (128).
    count_width : int
        Width of a request's word count (default ``addr_width``).
    depth : int
        Words in the FIFO: written, or waiting for their command or for the controller to take
        them (default 32; the controller may hold a bank's commands for a while before it takes
        their data, and the FIFO must cover that for full speed).

    Attributes
    ----------
    req : In(stream.Signature(request_layout(addr_width, count_width)))
        Requests: ``addr``, the first word's address, and ``count``, the number of words.
    data : In(stream.Signature(data_width))
        The words to write, in request and address order; taken only for a request.
    cmd : Out(stream.Signature(cmd_layout(addr_width)))
        Write commands (``we`` is 1), to the controller's ``cmd``.
    wdata : Out(stream.Signature(wdata_layout(data_width)))
        Write data, every byte enabled, to the controller's ``wdata``.
    done : Out(1)
        High for the cycle in which the controller takes a request's last word.
    busy : Out(1)
        A request is being taken, or one of its words has not yet been taken by the controller.
    """

    def __init__(self, *, addr_width=25, data_width=128, count_width=None, depth=32):
        count_width = check_arguments(addr_width, data_width, count_width, depth, min_depth=1)
        self._depth = depth
        self._entry = data.StructLayout({"data": data_width, "last": 1})
        super().__init__({
            "req": In(stream.Signature(request_layout(addr_width, count_width))),
            "data": In(stream.Signature(data_width)),
            "cmd": Out(stream.Signature(cmd_layout(addr_width))),
            "wdata": Out(stream.Signature(wdata_layout(data_width))),
            "done": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self._depth
        m.submodules.fifo = buffer = fifo.SyncFIFOBuffered(width=self._entry.size, depth=depth)
        w_entry = data.View(self._entry, buffer.w_data)
        r_entry = data.View(self._entry, buffer.r_data)
        addr = Signal.like(self.req.payload.addr)        # the next command's
        left = Signal.like(self.req.payload.count)       # words still to take from ``data``
        unissued = Signal(range(depth + 1))              # words in the FIFO with no command yet

        push = self.data.valid & self.data.ready
        issue = self.cmd.valid & self.cmd.ready
        m.d.comb += [
            self.data.ready.eq((left != 0) & buffer.w_rdy),
            buffer.w_en.eq(push),
            w_entry.data.eq(self.data.payload),
            w_entry.last.eq(left == 1),
            # The FIFO's output shows the oldest word not taken: this command's or an earlier
            # command's, whose words then follow one a cycle.
            self.cmd.valid.eq((unissued != 0) & buffer.r_rdy),
            self.cmd.payload.we.eq(1),
            self.cmd.payload.addr.eq(addr),
            self.req.ready.eq((left == 0) & ((unissued == 0) | ((unissued == 1) & issue))),
        ]
        with m.If(push):
            m.d.sync += left.eq(left - 1)
        with m.If(issue):
            m.d.sync += addr.eq(addr + 1)
        with m.If(push & ~issue):
            m.d.sync += unissued.eq(unissued + 1)
        with m.Elif(issue & ~push):
            m.d.sync += unissued.eq(unissued - 1)
        with m.If(self.req.valid & self.req.ready):
            m.d.sync += [addr.eq(self.req.payload.addr), left.eq(self.req.payload.count)]

        m.d.comb += [
            self.wdata.valid.eq(buffer.r_rdy),
            self.wdata.payload.data.eq(r_entry.data),
            self.wdata.payload.we.eq(-1),
            buffer.r_en.eq(self.wdata.ready),
            self.done.eq(self.wdata.ready & buffer.r_rdy & r_entry.last),
            self.busy.eq((left != 0) | (buffer.level != 0)),
        ]
        return m
