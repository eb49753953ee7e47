"""The board subcommands of `systolica`: ``boards``, ``bitstream``, ``program`` and
``bitstreams`` (the catalog, builds with the PyPI Yosys/nextpnr, loading a bitstream)."""

import sys
from pathlib import Path

__all__ = ["add_board_commands", "cmd_bitstream", "cmd_bitstreams", "cmd_boards", "cmd_program"]


def _board_from_args(args):
    import dataclasses

    from systolica.boards.catalog import board_by_name

    board = board_by_name(args.board)
    changes = {k: v for k, v in (("rows", args.rows), ("cols", args.cols)) if v is not None}
    if changes:
        board = dataclasses.replace(board, config=dataclasses.replace(board.config, **changes))
    if getattr(args, "nextpnr_opts", None) is not None:
        board = dataclasses.replace(board, nextpnr_opts=args.nextpnr_opts)
    return board


def cmd_program(args):
    """Load a board's bitstream into its FPGA (SRAM; --flash: its SPI flash, so it stays after
    power-off) with openFPGALoader, building the bitstream first if it is missing or was built
    from other sources. --dry-run prints what it would do and does nothing."""
    from systolica.boards.catalog import board_by_name
    from systolica.boards.program import ProgramError, program

    board = board_by_name(args.board)
    try:
        program(board, flash=args.flash, dry_run=args.dry_run)
    except ProgramError as exc:
        print(f"systolica program: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _print_result(r):
    if not r["ok"]:
        verdict = "DID NOT ROUTE" if r.get("stalled") else "BUILD FAILED"
        print(f"{r['board']}: {verdict}\n{r.get('error', '')}")
        return
    fmax = r["fmax_mhz"]
    print(f"{r['board']} ({r['device']}): {r['rows']}x{r['cols']} array = {r['macs']} int8 MACs "
          f"per cycle, multipliers: {r['multiplier']}")
    print(f"  clock {r['clock_mhz']:g} MHz (PLL), Fmax {fmax:.2f} MHz "
          f"({'meets' if fmax >= r['clock_mhz'] else 'FAILS'} the clock)")
    print(f"  logic {r['logic'][0]}/{r['logic'][1]}, flip-flops {r.get('flip_flops')}, "
          f"DSP {r['dsp'][0]}/{r['dsp'][1]}, BRAM {r['bram'][0]}/{r['bram'][1]}")
    print(f"  peak {2 * r['macs'] * r['clock_mhz'] / 1e3:.2f} GOPS; "
          f"LUTs per PE {r.get('luts_per_pe', 0):.1f}")
    from systolica.boards.report import bytes_per_weight, link_tokens_per_s
    print(f"  UART {r['baudrate']} baud (divisor {r['baud_divisor']}, error "
          f"{r['baud_error']:.2%}); SmolLM2 link-bound decode:")
    for name in r.get("formats", ["int8"]):
        bpw = bytes_per_weight(name)
        print(f"    {name} ({bpw:.4g} bytes/weight): "
              f"{link_tokens_per_s(r['baudrate'], bpw):.4f} tokens/s")
    print(f"  bitstream: {r['bitstream']} (built in {r['build_seconds']} s)")


def cmd_bitstream(args):
    """Build a board's bitstream with the PyPI Yosys/nextpnr and report what it measured."""
    from systolica.boards.build import build_board

    result = build_board(_board_from_args(args), out_dir=args.build_dir,
                         stop_stalled=not args.keep_routing)
    _print_result(result)
    return 0 if result["ok"] and result["fmax_mhz"] >= result["clock_mhz"] else 1


def cmd_bitstreams(args):
    """Build every supported board (or --boards a,b); write reports/boards.md and
    reports/roofline.png from every board's latest build."""
    import json
    import pathlib

    from systolica.boards.build import BUILD_ROOT, build_board
    from systolica.boards.catalog import BOARDS, board_by_name
    from systolica.boards.report import render_markdown, roofline_png

    names = args.boards.split(",") if args.boards else list(BOARDS)
    built = {}
    if not args.report_only:
        for name in names:
            built[name] = build_board(board_by_name(name), stop_stalled=not args.keep_routing)
            _print_result(built[name])
    results = []
    for name in BOARDS:
        path = BUILD_ROOT / name / "result.json"
        if name in built:
            results.append(built[name])
        elif path.exists():
            results.append(json.loads(path.read_text()))
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    missing = [name for name in BOARDS if name not in {r["board"] for r in results}]
    (out / "boards.md").write_text(render_markdown(results, missing=missing))
    (out / "boards.json").write_text(json.dumps(results, indent=1))
    roofline_png(results, out / "roofline.png")
    print(f"wrote {out / 'boards.md'} and {out / 'roofline.png'}")
    return 0 if all(r["ok"] for r in built.values()) else 1


def cmd_boards(args):
    """List the supported boards (and the ones not supported, with the reason)."""
    from systolica.boards.catalog import BOARDS, UNSUPPORTED

    width = max(map(len, [*BOARDS, *UNSUPPORTED]))
    for b in BOARDS.values():
        print(f"{b.name:<{width}}  {b.description}: {b.config.rows}x{b.config.cols} array, "
              f"{b.clk_freq / 1e6:g} MHz, UART {b.baudrate} baud"
              + (f"; nextpnr {b.nextpnr_opts}" if b.nextpnr_opts else ""))
    for name, reason in UNSUPPORTED.items():
        print(f"{name:<{width}}  not supported: {reason}")
    return 0


def _add_keep_routing(p):
    p.add_argument("--keep-routing", action="store_true",
                   help="let a stalled router run on (by default a build stops, and says it "
                        "did not route, once what nextpnr's router has left (router2: overused "
                        "wires; router1: arcs) has gone 25 iterations (router2) or 50,000 "
                        "(router1) without a new low of 100 or more, or has risen to over four "
                        "times its low plus 50)")


def add_board_commands(sub):
    """Register the board subcommands on the `systolica` parser's subparsers."""
    p = sub.add_parser("boards", help="list supported boards", description=cmd_boards.__doc__)
    p.set_defaults(func=cmd_boards)

    p = sub.add_parser("bitstream", help="build one board's bitstream and report on it",
                       description=cmd_bitstream.__doc__)
    p.add_argument("--board", required=True, help="board name (see `systolica boards`)")
    p.add_argument("--rows", type=int, help="override the board's array rows")
    p.add_argument("--cols", type=int, help="override the board's array columns")
    p.add_argument("--nextpnr-opts", metavar="OPTS",
                   help="nextpnr options instead of the catalog's (a seed search: "
                        "--nextpnr-opts='--seed 2'; see `systolica boards` for the catalog's)")
    p.add_argument("--build-dir", type=Path, metavar="DIR",
                   help="build here instead of build/boards/BOARD (so that several builds of "
                        "one board can run side by side; `program` uses the default folder)")
    _add_keep_routing(p)
    p.set_defaults(func=cmd_bitstream)

    p = sub.add_parser("program", help="load a board's bitstream (building it if needed)",
                       description=cmd_program.__doc__)
    p.add_argument("--board", required=True, help="board name (see `systolica boards`)")
    p.add_argument("--flash", action="store_true",
                   help="write the SPI flash instead of the FPGA's SRAM")
    p.add_argument("--dry-run", action="store_true",
                   help="print the openFPGALoader command (and whether a build comes first)")
    p.set_defaults(func=cmd_program)

    p = sub.add_parser("bitstreams", help="build all boards; regenerate reports/boards.md",
                       description=cmd_bitstreams.__doc__)
    p.add_argument("--out", default="reports", help="report directory (default reports/)")
    p.add_argument("--boards", help="comma-separated boards to build (default: all)")
    p.add_argument("--report-only", action="store_true",
                   help="build nothing; write the report from the latest builds")
    _add_keep_routing(p)
    p.set_defaults(func=cmd_bitstreams)
