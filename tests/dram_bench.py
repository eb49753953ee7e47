"""The DRAM test tops and their Verilator builds, shared by tests/test_dram.py (the controller's
raw native port) and tests/test_dram_dma.py (the DMA engines on it).

`DramTestTop` is `DramInit` playing the core's init sequence into a `DramController`; with
``dma`` it also holds a `DramWriter` and a `DramReader` sharing the port through a
`DramPortMux`, and its ``use_dma`` input says whether the port is the engines' or the raw
port's (so one simulation measures both). `DramDesign` is such a top and the generated core as
a `cocotb_build.CocotbBuild` design; `run_case` runs one cocotb test of it and returns the
figures the test reported.
"""

import hashlib
import json
import os
import pathlib
import time

import amaranth
from amaranth.back import verilog as amaranth_verilog
from amaranth.hdl import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from cocotb_tools.check_results import get_results

from systolica.rtl.dram_controller import DramController
from systolica.rtl.dram_init import DramInit
from systolica.rtl.dram_port_mux import DramPortMux
from systolica.rtl.dram_reader import DramReader
from systolica.rtl.dram_writer import DramWriter
from systolica.sim import dram_core, gate_level, verilog

__all__ = ["DramDesign", "DramTestTop", "run_case"]


class DramTestTop(wiring.Component):
    """`DramInit` playing the core's init sequence into a `DramController`, whose native port
    and status are the top level's ports (``init_played``: the player is done). The read stream
    is ``rdata_valid`` and ``rdata``: a top level cannot have the constant ``ready`` of an
    always-ready stream as a port.

    With ``dma``, the engines' streams are ports too (``write_req``, ``write_data``,
    ``write_done``, ``writer_busy``; ``read_req``, ``read_data``, ``reader_busy``), and the
    controller's port is theirs while ``use_dma`` is high, the raw port's while it is low
    (``rdata_valid`` then stays low); switch it only while both sides are idle.
    """

    def __init__(self, info, *, dma=False):
        self._info, self._dma = info, dma
        self._controller = DramController.from_info(info)
        members = self._controller.signature.members
        ports = {"cmd": members["cmd"], "wdata": members["wdata"],
                 "rdata_valid": Out(1), "rdata": Out(len(self._controller.rdata.payload)),
                 "init_done": Out(1), "init_error": Out(1), "init_played": Out(1)}
        if dma:
            widths = dict(addr_width=len(self._controller.cmd.payload.addr),
                          data_width=len(self._controller.rdata.payload))
            self._engines = DramWriter(**widths), DramReader(**widths), DramPortMux(**widths)
            writer, reader, _ = (engine.signature.members for engine in self._engines)
            ports.update(use_dma=In(1),
                         write_req=writer["req"], write_data=writer["data"],
                         write_done=writer["done"], writer_busy=writer["busy"],
                         read_req=reader["req"], read_data=reader["data"],
                         reader_busy=reader["busy"])
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        m.submodules.controller = controller = self._controller
        m.submodules.init = init = DramInit(
            [write[:3] for write in self._info["init"]],
            addr_width=self._info["ports"]["wb_ctrl_adr"][1])
        wiring.connect(m, init.bus, controller.ctrl)
        m.d.comb += [self.rdata.eq(controller.rdata.payload),
                     self.init_done.eq(controller.init_done),
                     self.init_error.eq(controller.init_error),
                     self.init_played.eq(init.done)]
        if not self._dma:
            wiring.connect(m, wiring.flipped(self.cmd), controller.cmd)
            wiring.connect(m, wiring.flipped(self.wdata), controller.wdata)
            m.d.comb += self.rdata_valid.eq(controller.rdata.valid)
            return m

        m.submodules.writer, m.submodules.reader, m.submodules.mux = self._engines
        writer, reader, mux = self._engines
        wiring.connect(m, wiring.flipped(self.write_req), writer.req)
        wiring.connect(m, wiring.flipped(self.write_data), writer.data)
        wiring.connect(m, wiring.flipped(self.read_req), reader.req)
        wiring.connect(m, reader.data, wiring.flipped(self.read_data))
        wiring.connect(m, writer.cmd, mux.write.cmd)
        wiring.connect(m, writer.wdata, mux.write.wdata)
        wiring.connect(m, reader.cmd, mux.read.cmd)
        wiring.connect(m, mux.read.rdata, reader.rdata)
        m.d.comb += [self.write_done.eq(writer.done), self.writer_busy.eq(writer.busy),
                     self.reader_busy.eq(reader.busy),
                     mux.rdata.payload.eq(controller.rdata.payload)]
        for name in ("cmd", "wdata"):              # the engines' port or the raw one
            port, engines, raw = (getattr(x, name) for x in (controller, mux, self))
            m.d.comb += [
                port.valid.eq(Mux(self.use_dma, engines.valid, raw.valid)),
                port.payload.eq(Mux(self.use_dma, engines.payload, raw.payload)),
                engines.ready.eq(port.ready & self.use_dma),
                raw.ready.eq(port.ready & ~self.use_dma),
            ]
        m.d.comb += [mux.rdata.valid.eq(controller.rdata.valid & self.use_dma),
                     self.rdata_valid.eq(controller.rdata.valid & ~self.use_dma)]
        return m


class DramDesign:
    """`DramTestTop` (with ``dma`` or not) and the generated core as a
    `cocotb_build.CocotbBuild` design: only the top level's ports are public (the core's many
    signals stay inside the C++ model)."""

    def __init__(self, kind="sim", *, dma=False):
        self.core = dram_core.core(kind)
        self.dma = dma
        key = hashlib.sha256(f"{self.core.key} amaranth {amaranth.__version__} dma {dma}".encode())
        for path in (*verilog.source_files(), pathlib.Path(__file__)):
            key.update(path.read_bytes())
        self.key = key.hexdigest()
        self.dir = self.core.dir / f"top-{self.key[:16]}"

    def sources(self):
        top, ports = self.dir / f"{verilog.TOPLEVEL}.v", self.dir / "ports.vlt"
        if not ports.exists():                 # the key names the top: convert it once
            text = amaranth_verilog.convert(DramTestTop(self.core.info, dma=self.dma),
                                            name=verilog.TOPLEVEL, emit_src=False)
            for path, content in ((top, text), (ports, gate_level.ports_vlt(text))):
                tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
                tmp.write_text(content)
                tmp.replace(path)
        return [ports, self.core.verilog, top]

    def build_args(self, sim):
        return ["--no-public-flat-rw"] if sim == "verilator" else []


def run_case(build, test_module, test_dir, testcase, params, report, seed):
    """Run cocotb ``testcase`` of ``test_module`` with ``params`` (and the seed, the report
    file's path and the core's JSON); fails unless it passed. Returns (the figures it wrote to
    ``report``, seconds it ran)."""
    case = dict(params, seed=seed, report=str(report), core=str(build.design.core.json))
    started = time.monotonic()
    try:
        xml = build.run(test_module, test_dir, case, testcase=testcase)
    except SystemExit:         # under pytest, cocotb's runner exits when a test fails
        xml = next(iter(sorted(build.last_run_dir.glob("*.xml"))), build.last_run_dir / "none")
    run_s = time.monotonic() - started
    total, failed = get_results(xml) if xml.exists() else (0, 0)
    assert total >= 1 and failed == 0, f"cocotb {testcase}: {failed} of {total} failed; see {xml}"
    return json.loads(pathlib.Path(report).read_text()), run_s
