"""The accelerator's way to its DRAM: a DMA writer and a DMA reader on one native port.

The command decoder stores WRITE_DRAM payloads and reads GEMM_DRAM's stored payloads (see
`protocol`) through a `DramAccessSignature`; `DramAccess` serves it with a `DramWriter` and a
`DramReader` sharing the controller's native port through a `DramPortMux`. The controller
itself (`DramController`, with its init player) is outside the accelerator, in the board's top
level, which connects it to the accelerator's ``dram`` port (`native_port_signature`).
"""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from systolica.protocol import DRAM_WORD_BYTES

from .dram_controller import cmd_layout, wdata_layout
from .dram_port_mux import DramPortMux
from .dram_reader import DramReader, request_layout
from .dram_writer import DramWriter

__all__ = ["DramAccess", "DramAccessSignature", "dram_addr_width", "dram_count_width",
           "native_port_signature"]

DATA_WIDTH = 8 * DRAM_WORD_BYTES


def dram_addr_width(config):
    """Width of a word address of ``config``'s DRAM."""
    return ((config.dram_mib << 20) // DRAM_WORD_BYTES - 1).bit_length()


def dram_count_width(config):
    """Width of a count of words up to every word of ``config``'s DRAM."""
    return dram_addr_width(config) + 1


def native_port_signature(addr_width):
    """A DRAM controller's native port as its user sees it (`DramController`'s ``cmd``,
    ``wdata`` and ``rdata``, flipped)."""
    return wiring.Signature({
        "cmd": Out(stream.Signature(cmd_layout(addr_width))),
        "wdata": Out(stream.Signature(wdata_layout(DATA_WIDTH))),
        "rdata": In(stream.Signature(DATA_WIDTH, always_ready=True)),
    })


class DramAccessSignature(wiring.Signature):
    """The decoder's side (``Out``) of its way to the DRAM.

    Members
    -------
    write_req : stream of `request_layout`: a run of words to write (WRITE_DRAM).
    write_data : stream of words to write, in order.
    read_req : stream of `request_layout`: a run of words to read (GEMM_DRAM).
    read_data : stream of the words read, in order (in).
    write_busy, read_busy : in; the writer (reader) has words not yet written (delivered).
    ready : in; the DRAM is initialized (nothing is requested before).
    """

    def __init__(self, addr_width):
        # A request's count: up to every word of the DRAM.
        request = stream.Signature(request_layout(addr_width, addr_width + 1))
        super().__init__({
            "write_req": Out(request),
            "write_data": Out(stream.Signature(DATA_WIDTH)),
            "read_req": Out(request),
            "read_data": In(stream.Signature(DATA_WIDTH)),
            "write_busy": In(1),
            "read_busy": In(1),
            "ready": In(1),
        })


class DramAccess(wiring.Component):
    """Serves a `DramAccessSignature` on a controller's native port.

    Ports
    -----
    user : `DramAccessSignature` (flipped): requests and words from the decoder.
    port : `native_port_signature` (out): to the controller.
    port_ready : in; the controller is initialized (passed on as ``user.ready``).
    """

    def __init__(self, addr_width):
        self._addr_width = addr_width
        super().__init__({
            "user": In(DramAccessSignature(addr_width)),
            "port": Out(native_port_signature(addr_width)),
            "port_ready": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        widths = dict(addr_width=self._addr_width, data_width=DATA_WIDTH)
        count = dict(widths, count_width=self._addr_width + 1)
        m.submodules.writer = writer = DramWriter(**count)
        m.submodules.reader = reader = DramReader(**count)
        m.submodules.mux = mux = DramPortMux(**widths)
        user = flipped(self.user)
        connect(m, user.write_req, writer.req)
        connect(m, user.write_data, writer.data)
        connect(m, user.read_req, reader.req)
        connect(m, reader.data, user.read_data)
        connect(m, writer.cmd, mux.write.cmd)
        connect(m, writer.wdata, mux.write.wdata)
        connect(m, reader.cmd, mux.read.cmd)
        connect(m, mux.read.rdata, reader.rdata)
        connect(m, mux.cmd, flipped(self.port.cmd))
        connect(m, mux.wdata, flipped(self.port.wdata))
        connect(m, flipped(self.port.rdata), mux.rdata)
        m.d.comb += [
            self.user.write_busy.eq(writer.busy),
            self.user.read_busy.eq(reader.busy),
            self.user.ready.eq(self.port_ready),
        ]
        return m
