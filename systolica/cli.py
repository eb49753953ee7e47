"""The `systolica` command: one entry point, one subcommand per job."""

import argparse
import inspect
import sys
import time

import numpy as np

from systolica.board_cmd import add_board_commands
from systolica.config import Config
from systolica.generate_cmd import (
    GENERATE_EXAMPLES,
    add_generate_args,
    cmd_demo,
    cmd_generate,
    cmd_project,
)
from systolica.layer_cmd import add_layer_args, cmd_run_layer
from systolica.quality_cmd import add_quality_args, cmd_quality
from systolica.sim.verilog import DRAM_MIB

__all__ = ["main"]


def config_from_args(args):
    kwargs = {}
    for name in ("rows", "cols", "link_bytes"):
        value = getattr(args, name, None)
        if value is not None:
            kwargs[name] = value
    if getattr(args, "dram", False):
        kwargs["dram_mib"] = DRAM_MIB
    try:
        return Config(**kwargs)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"systolica: bad configuration: {exc}") from None


def _open_driver(args, progress=None):
    from systolica.host.driver import Driver
    from systolica.host.link import SerialLink, SimulatedBoardLink

    if getattr(args, "port", None):
        link = SerialLink(args.port, args.baud)
    else:
        link = SimulatedBoardLink(config_from_args(args))
    return Driver(link, timeout=args.timeout, progress=progress)


def _add_device_args(parser):
    group = parser.add_argument_group("device (default: the simulated board)")
    default = Config()
    group.add_argument("--rows", type=int, help=f"simulated array rows (default {default.rows})")
    group.add_argument("--cols", type=int,
                       help=f"simulated array columns (default {default.cols})")
    group.add_argument("--link-bytes", type=int,
                       help=f"simulated link width in bytes per cycle (default "
                            f"{default.link_bytes})")
    group.add_argument("--dram", action="store_true",
                       help=f"give the simulated board {DRAM_MIB} MiB of DRAM (the ECPIX-5's "
                            "DDR3: LiteDRAM's controller with a model of the memory), which "
                            "gemm, bench and selftest also multiply from (weights stored with "
                            "WRITE_DRAM, GEMM_DRAM commands); a board build of its own, and the "
                            f"board process holds the {DRAM_MIB} MiB in memory")
    group.add_argument("--port", help="talk to a real board on this serial port instead; 'auto' "
                                      "finds the board's USB-UART by its USB id")
    group.add_argument("--baud", type=int, default=3_000_000, help="serial line rate")
    group.add_argument("--timeout", type=float, default=30.0,
                       help="seconds without an answer before the link is declared dead")


def cmd_gemm(args):
    """A random int8 GEMM on the device, checked exactly against numpy; on a device with DRAM
    (--dram), also with the weights stored in the DRAM."""
    rng = np.random.default_rng(args.seed)
    a = rng.integers(-128, 128, (args.n, args.k), dtype=np.int8)
    w = rng.integers(-128, 128, (args.k, args.m), dtype=np.int8)
    want = a.astype(np.int64) @ w.astype(np.int64)
    with _open_driver(args) as drv:
        cfg = drv.config
        dram = f", DRAM {cfg.dram_mib} MiB" if cfg.dram_mib else ""
        print(f"device: {cfg.rows}x{cfg.cols} array, link {cfg.link_bytes} B/cycle, "
              f"activation buffer {cfg.act_depth} words, max K {cfg.max_k}{dram}")
        runs = [("", lambda: w)]
        if cfg.dram_mib:
            runs.append((" (weights from DRAM)", lambda: drv.store_gemm_weights(w)))
        exact = True
        for label, weights in runs:
            w_in = weights()
            st = drv.stats
            st.device_cycles = st.macs = 0
            out, back = st.bytes_out, st.bytes_in
            started = time.monotonic()
            got = drv.gemm(a, w_in)
            wall = time.monotonic() - started
            same = np.array_equal(got, want)
            exact &= same
            print(f"GEMM {args.n}x{args.k} @ {args.k}x{args.m}{label}: "
                  f"{'bit-exact with numpy' if same else 'MISMATCH with numpy'} "
                  f"({np.count_nonzero(got != want)} of {got.size} differ)")
            print(f"device cycles {st.device_cycles}, MAC utilization {st.utilization(cfg):.1%}, "
                  f"{st.bytes_out - out} bytes out, {st.bytes_in - back} bytes in, "
                  f"wall {wall:.2f} s")
    return 0 if exact else 1


BENCH_SHAPES = [(64, 576, 64), (256, 64, 64), (256, 256, 64), (256, 576, 64)]


def _random_q4_1(rng, m, k):
    """A random Q4_1 tensor (m, k) as GGUF blocks, made by gguf.quants from Gaussian weights."""
    from gguf import GGMLQuantizationType, quants

    return quants.quantize(rng.standard_normal((m, k)).astype(np.float32),
                           GGMLQuantizationType.Q4_1)


def cmd_bench(args):
    """Simulated-board speed and MAC utilization on a few GEMM shapes, int8 and (when the device
    carries it) native Q4_1 blocks; on a device with DRAM (--dram), each also with its weights
    stored in the DRAM ("@dram": GEMM_DRAM, no weights on the link)."""
    from systolica.host.block_formats import block_gemm_reference, quantize_activations

    rng = np.random.default_rng(0)
    drv = _open_driver(args)
    cfg = drv.config
    dram = f", DRAM {cfg.dram_mib} MiB" if cfg.dram_mib else ""
    print(f"device: {cfg.rows}x{cfg.cols} array, link {cfg.link_bytes} B/cycle "
          f"({drv.link.name}); formats {', '.join(cfg.formats)}{dram}")
    print(f"{'GEMM N x K x M':>18} {'format':>9} {'cycles':>9} {'MAC util':>9} {'wall s':>7} "
          f"{'cycles/s':>10} {'B/weight':>8} exact")
    for n, k, m in BENCH_SHAPES:
        runs = ["int8"] + (["q4_1"] if "q4_1" in cfg.formats else [])
        for fmt in runs:
            if fmt == "int8":
                acts = (rng.integers(-128, 128, (n, k), dtype=np.int8),)
                weights = rng.integers(-128, 128, (k, m), dtype=np.int8)
                want = acts[0].astype(np.int64) @ weights
            else:
                weights = _random_q4_1(rng, m, k)
                acts = quantize_activations(rng.standard_normal((n, k)))
                want = block_gemm_reference(*acts, weights, fmt)
            for stored in (False, True) if cfg.dram_mib else (False,):
                w_in = drv.store_gemm_weights(weights, fmt) if stored else weights
                stats = drv.stats
                stats.device_cycles = stats.macs = stats.weight_bytes_out = 0
                started = time.monotonic()
                if fmt == "int8":
                    exact = np.array_equal(drv.gemm(*acts, w_in), want)
                else:
                    got = drv.gemm_blocks(*acts, w_in, fmt)
                    exact = np.array_equal(got.view(np.uint32), want)
                wall = time.monotonic() - started
                cycles = stats.device_cycles
                label = fmt + ("@dram" if stored else "")
                print(f"{f'{n} x {k} x {m}':>18} {label:>9} {cycles:>9} "
                      f"{stats.utilization(cfg):>9.1%} {wall:>7.3f} {cycles / wall:>10.3g} "
                      f"{stats.weight_bytes_out / (k * m):>8.4f} {'yes' if exact else 'NO'}")
    drv.close()
    stats = getattr(drv.link, "stats", None)
    if stats:
        print(stats)
    return 0


def cmd_identify(args):
    """Print the device's configuration as IDENTIFY reports it."""
    with _open_driver(args) as drv:
        for field, value in drv.config.__dict__.items():
            print(f"{field:>14}: {value}")
        print(f"{'line errors':>14}: {drv.stats.line_framing_errors} framing, "
              f"{drv.stats.line_overruns} overruns (since power-up; 0 without a UART)")
    return 0


def cmd_selftest(args):
    """Bring-up check of a device (a board with --port, else the simulated board; with --board
    and no --port, the simulated board at that board's configuration): IDENTIFY against the
    catalog entry, GEMMs in every format it carries against numpy and the bit-exact block model,
    the link's real throughput both ways and the decode rate it implies, and what the LEDs
    mean. Exits non-zero if a check fails."""
    from systolica.boards.catalog import board_by_name
    from systolica.host.driver import Driver
    from systolica.host.link import SerialLink, SimulatedBoardLink
    from systolica.host.model_file import ModelFile
    from systolica.host.selftest import selftest

    board = board_by_name(args.board) if args.board else None
    if args.port:
        link, baud = SerialLink(args.port, args.baud), args.baud
    else:
        link, baud = SimulatedBoardLink(board.config if board else config_from_args(args)), None
    with Driver(link, timeout=args.timeout) as drv:
        checks, lines = selftest(drv, board=board, model_file=ModelFile(), baudrate=baud)
    for line in lines:
        print(line)
    return 0 if all(c.ok for c in checks) else 1


def build_parser():
    parser = argparse.ArgumentParser(
        prog="systolica",
        description="An open FPGA accelerator for quantized LLM math. Without --port every "
                    "command runs on the simulated board: the accelerator's own RTL compiled "
                    "with Verilator, behind the same link a real board's UART gives.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="the main job: SmolLM2 writes a few tokens on the simulated "
                                    "accelerator", description=inspect.cleandoc(cmd_demo.__doc__))
    add_generate_args(p, demo=True)
    _add_device_args(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run-layer", help="one SmolLM2 layer on the accelerator vs float",
                       description=cmd_run_layer.__doc__)
    add_layer_args(p, _add_device_args)
    p.set_defaults(func=cmd_run_layer)

    p = sub.add_parser("generate", help="generate text with the whole model on the "
                                        "accelerator, checked against float",
                       description=inspect.cleandoc(cmd_generate.__doc__),
                       epilog=GENERATE_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_generate_args(p)
    _add_device_args(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("gemm", help="a random int8 GEMM, checked exactly against numpy",
                       description=cmd_gemm.__doc__)
    p.add_argument("-n", type=int, default=64, help="activation rows N")
    p.add_argument("-k", type=int, default=576, help="reduction length K")
    p.add_argument("-m", type=int, default=64, help="output columns M")
    p.add_argument("--seed", type=int, default=0)
    _add_device_args(p)
    p.set_defaults(func=cmd_gemm)

    p = sub.add_parser("bench", help="simulated-board cycles/s and MAC utilization",
                       description=cmd_bench.__doc__)
    _add_device_args(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("project", help="projected SmolLM2 decode tokens/s on every board",
                       description=cmd_project.__doc__)
    p.add_argument("--boards", help="comma-separated boards (default: all)")
    p.add_argument("--model", help="GGUF file (default: SmolLM2-135M-Instruct Q4_1)")
    p.set_defaults(func=cmd_project)

    p = sub.add_parser("quality", help="bits per weight against fidelity on real text and "
                                       "tokens/s per board", description=cmd_quality.__doc__)
    add_quality_args(p)
    p.set_defaults(func=cmd_quality)

    p = sub.add_parser("selftest", help="bring-up check: identity, GEMMs in every format, link "
                                        "rate", description=cmd_selftest.__doc__)
    p.add_argument("--board", help="the catalog board the device should be (see `systolica "
                                   "boards`)")
    _add_device_args(p)
    p.set_defaults(func=cmd_selftest)

    add_board_commands(sub)

    p = sub.add_parser("identify", help="print the device's configuration",
                       description=cmd_identify.__doc__)
    _add_device_args(p)
    p.set_defaults(func=cmd_identify)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    for name in ("n", "k", "m"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise SystemExit(f"systolica: -{name} must be a positive integer, not {value}")
    if getattr(args, "port", None) == "auto":
        from systolica.boards.catalog import BOARDS
        from systolica.host.ports import PortNotFound, find_board_port

        try:
            args.port, names = find_board_port(BOARDS)
        except PortNotFound as exc:
            print(f"systolica: error: --port auto: {exc}", file=sys.stderr)
            return 2
        print(f"--port auto: {args.port} (the USB-UART of {', '.join(names)})", file=sys.stderr)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, ValueError, OSError, KeyError) as exc:
        print(f"systolica: error: {exc}", file=sys.stderr)
        for note in getattr(exc, "__notes__", ()):
            print(f"  {note}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
