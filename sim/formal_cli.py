"""``python -m systolica.sim.formal``: run the formal checks of `formal_checks` at their long
depths (or those named, or at a depth given) and print a table of the results."""

import argparse
import textwrap

from .formal import BUILD_ROOT, run
from .formal_checks import CHECKS

__all__ = ["main"]


def _table(rows):
    header = ("check", "mode", "depth", "result", "seconds", "cpu s")
    cells = [header, *[(r.name, r.mode, str(r.depth), r.status, f"{r.seconds:.1f}",
                        f"{r.cpu_seconds:.1f}") for r in rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    out = []
    for n, row in enumerate(cells):
        out.append("  ".join(c.rjust(w) if i in (2, 4, 5) else c.ljust(w)
                             for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv=None):
    names = [c.name for c in CHECKS]
    listing = "\n".join(
        f"  {c.name:<26} {c.mode:<5}  depth {c.long_depth:>3} here, "
        + (f"{c.short_depth:>3} in tests" if c.short_depth else "not in tests") + "\n"
        + textwrap.fill(c.summary, 96, initial_indent=" " * 6, subsequent_indent=" " * 6)
        for c in CHECKS)
    parser = argparse.ArgumentParser(
        prog="python -m systolica.sim.formal",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Formal checks of the accelerator's RTL with SymbiYosys (Yosys, sby and the Yices "
            "solver, all from PyPI). Each check wraps a part of the design with its properties "
            "and asks sby whether they hold: in bmc mode for every input sequence up to DEPTH "
            "cycles from reset, in prove mode for all time (k-induction), in cover mode that "
            "the states the properties speak of are reached. Runs every check (or those "
            "named) at its long depth, one after the other, and prints a table. A check "
            "that fails prints the path to its counterexample trace (.vcd). Work folders: "
            f"{BUILD_ROOT}."),
        epilog=f"checks (mode, depth here and in tests/test_formal.py):\n{listing}")
    parser.add_argument("checks", nargs="*", metavar="CHECK",
                        help="checks to run (default: all); see the list below")
    parser.add_argument("--depth", type=int, default=None,
                        help="run every selected check at this depth instead of its own")
    parser.add_argument("--short", action="store_true",
                        help="only the checks of the test suite, at its short depths")
    parser.add_argument("--timeout", type=int, default=None,
                        help="give up on a check after this many seconds (sby's timeout)")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    args = parser.parse_args(argv)
    if args.list:
        print(listing)
        return 0
    unknown = [n for n in args.checks if n not in names]
    if unknown:
        parser.error(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(names)}")
    if args.depth is not None and args.depth < 1:
        parser.error("--depth must be positive")
    selected = [c for c in CHECKS if (not args.checks or c.name in args.checks)
                and (c.short_depth or not args.short)]
    results = []
    for c in selected:
        depth = args.depth or (c.short_depth if args.short else c.long_depth)
        print(f"{c.name}: {c.mode} to depth {depth} ...", flush=True)
        result = run(c.build(), name=c.name, mode=c.mode, depth=depth, timeout=args.timeout)
        if result.passed:
            print(f"{c.name}: PASS in {result.seconds:.1f} s", flush=True)
        else:
            print(result.describe(), flush=True)
        results.append(result)
    print()
    print(_table(results))
    bad = [r.name for r in results if not r.passed]
    if bad:
        print(f"\nnot passed: {', '.join(bad)}")
        return 1
    return 0
