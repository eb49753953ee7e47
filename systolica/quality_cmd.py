"""``systolica quality``: bits per weight against fidelity on real text against tokens/s per
board (`systolica.host.quality`); a table on the console, and with ``--report DIR`` also
``quality.md``, ``quality.json`` and ``quality.png`` there."""

import json
import pathlib
import sys
import time

__all__ = ["add_quality_args", "cmd_quality"]

WEIGHT_CHOICES = ("file", "q8_0", "q4_1", "q4_0", "int8")
WEIGHT_NAMES = {"file": "file (Q4_1, Q8_0 head)", "q8_0": "Q8_0", "q4_1": "Q4_1", "q4_0": "Q4_0",
                "int8": "int8 per channel"}


def add_quality_args(parser):
    parser.add_argument("--windows", type=int, default=8, metavar="N",
                        help="text windows (default 8)")
    parser.add_argument("--tokens", type=int, default=64, metavar="N",
                        help="tokens per window (default 64)")
    parser.add_argument("--weights", default=",".join(WEIGHT_CHOICES), metavar="LIST",
                        help="weight formats, comma-separated, of " + ", ".join(WEIGHT_CHOICES)
                             + " (default: all; 'file' is the model file as it is)")
    parser.add_argument("--report", metavar="DIR",
                        help="also write quality.md, quality.json and quality.png into DIR")
    parser.add_argument("--model", metavar="PATH",
                        help="GGUF file (default: SmolLM2-135M-Instruct Q4_1)")
    parser.add_argument("--measure-resident", action="store_true",
                        help="if the simulated board with DRAM has no measured generate with "
                             "resident weights at its current build, run one first (`systolica "
                             "generate --dram --device-argmax --tokens 2`, several minutes) for "
                             "the tokens/s with the weights in the ECPIX-5's DRAM")


def _error(message):
    print(f"systolica quality: error: {message}", file=sys.stderr)
    return 2


def cmd_quality(args):
    """What each weight format and activation scheme the device carries costs in fidelity on
    real text (Python's reference documentation), against the model file's own weights with
    float activations, next to its link bytes per weight and decode tokens/s per board. Every
    row uses the device's exact arithmetic in numpy."""
    from systolica.host.model_file import ModelFile
    from systolica.host.progress import Progress
    from systolica.host.quality import ROWS, evaluate, text_windows
    from systolica.host.tokenizer import gguf_tokenizer

    if args.windows < 1:
        return _error(f"--windows must be at least 1, not {args.windows}")
    if args.tokens < 2:
        return _error(f"--tokens must be at least 2, not {args.tokens}")
    chosen = [w.strip() for w in args.weights.split(",") if w.strip()]
    bad = [w for w in chosen if w not in WEIGHT_CHOICES]
    if bad or not chosen:
        return _error(f"--weights takes {', '.join(WEIGHT_CHOICES)}, not {args.weights!r}")
    rows = [r for r in ROWS if r.weights in chosen or (r.weights == "file" and r.name.endswith(
        "float"))]
    try:
        model_file = ModelFile(args.model)
        windows = text_windows(gguf_tokenizer(model_file), args.windows, args.tokens)
    except (FileNotFoundError, ValueError) as exc:
        return _error(str(exc).splitlines()[0])
    started = time.monotonic()
    if args.model is None:
        resident, why = _resident_run(args.measure_resident)
    else:       # the saved run is keyed on the simulated board, not on the model it ran
        resident, why = None, ("measured with the default model only (`systolica generate "
                               "--dram` keeps one run per simulated board build)")
    with Progress("quality", len(rows) * len(windows)) as bar:
        def progress(row, i):
            bar.label = f"{row.name} window {i + 1}/{len(windows)}"
            bar.advance(1)
        results = evaluate(model_file, windows, rows, progress=progress, resident=resident)
    lines = table_lines(results, len(windows), args.tokens) + resident_lines(results, why)
    for line in lines:
        print(line)
    print(f"({time.monotonic() - started:.0f} s)")
    if args.report:
        write_report(results, lines, pathlib.Path(args.report))
        print(f"wrote {args.report}/quality.md, quality.json, quality.png")
    return 0


def _resident_run(measure):
    """(`projection.run_figures`, `dram_rate.DramRate`) of the last generate with resident
    weights on the current simulated board with DRAM, running one first if ``measure`` and
    there is none; or (None, why not)."""
    from systolica.config import Config
    from systolica.host.dram_rate import dram_rate
    from systolica.host.projection import load_run
    from systolica.sim.verilog import DRAM_MIB

    config = Config(dram_mib=DRAM_MIB)
    try:
        figures = load_run(config)
        if figures is None and measure:
            from systolica import cli

            print("measuring a decode token with the weights resident in DRAM: " + " ".join(
                ["systolica generate", repr(RESIDENT_PROMPT), *RESIDENT_ARGS]))
            code = cli.main(["generate", RESIDENT_PROMPT, *RESIDENT_ARGS])
            print()
            if code:
                return None, f"the generate that measures it failed (exit status {code})"
            figures = load_run(config)
        if figures is None:
            return None, ("not measured on the current simulated board build (`systolica "
                          "generate --dram --device-argmax --tokens 2`, or `systolica quality "
                          "--measure-resident`, measures it)")
        return (figures, dram_rate(config)), ""
    except RuntimeError as exc:         # the DRAM core cannot be generated here
        return None, str(exc).splitlines()[0]


RESIDENT_PROMPT = "The capital of France is"
RESIDENT_ARGS = ("--tokens", "2", "--dram", "--device-argmax")


def resident_lines(results, why):
    """The tokens/s of each row with the weights resident in the DRAM board's DRAM."""
    from systolica.host.projection import DRAM_BOARD, FAST_LINK

    head = f"with the weights resident in the {DRAM_BOARD}'s DRAM"
    rows = list({r.row.weights: r for r in reversed(results) if r.resident is not None}.values())
    rows.reverse()           # one per weight format: the activations do not change the DRAM's
    if not rows:
        return ["", f"{head}: {why}"]
    fast, fast_name = FAST_LINK
    p = rows[0].resident
    uart = f"{p.link_bytes_per_s / 1e3:.0f} kB/s link"
    lines = ["", f"{head} ({p.source}; link bytes per token {p.link_bytes / 1e6:.3f} MB as "
                 f"measured, for every row; tokens/s at the board's {uart} and at "
                 f"{fast / 1e6:g} MB/s, {fast_name}):",
             f"{'weights':<22} {'DRAM MB':>8} {'cycles':>12}  {'tokens/s':>8} {'bound':<14} "
             f"{'at ' + format(fast / 1e6, 'g') + ' MB/s':>10} {'bound':<14}"]
    for r in rows:
        q = r.resident
        lines.append(f"{WEIGHT_NAMES[r.row.weights]:<22} {q.dram_bytes / 1e6:>8.2f} "
                     f"{q.cycles:>12,.0f}  {q.tokens_per_s():>8.4f} {q.bound():<14} {q.tokens_per_s(fast):>10.3f} "
                     f"{q.bound(fast):<14}")
    return lines


def table_lines(results, windows, tokens):
    boards = sorted({b for r in results for b in r.tokens_per_s})
    lines = [f"{windows} windows x {tokens} tokens of Python's reference documentation "
             "(pydoc_data.topics); baseline: the model file's weights (Q4_1 layers, Q8_0 head), "
             "float activations",
             f"{'row':<20} {'changes':<22} {'B/weight':>8} {'bits':>5} {'perplexity':>10} "
             f"{'KL nats':>9} {'top-1':>6}  tokens/s (link-bound): "
             + ", ".join(boards)]
    for r in results:
        rates = " ".join(f"{r.tokens_per_s[b]:.4f}" if b in r.tokens_per_s else "   -  "
                         for b in boards)
        lines.append(f"{r.row.name:<20} {r.row.changes:<22} {r.bytes_per_weight:>8.4f} "
                     f"{8 * r.bytes_per_weight:>5.2f} {r.perplexity:>10.3f} {r.kl:>9.2e} "
                     f"{r.top1:>6.3f}  {rates}")
    return lines


def write_report(results, lines, out):
    from systolica.host.projection import FAST_LINK

    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.md").write_text(
        "# What each bit buys\n\nGenerated by `make quality` (`systolica quality --report "
        "reports`).\n\n```\n" + "\n".join(lines) + "\n```\n")
    (out / "quality.json").write_text(json.dumps([{
        "row": r.row.name, "weights": r.row.weights, "activations": r.row.activations,
        "changes": r.row.changes, "bytes_per_weight": r.bytes_per_weight,
        "perplexity": r.perplexity, "kl": r.kl, "top1": r.top1,
        "tokens_per_s": r.tokens_per_s,
        "resident": None if r.resident is None else {
            "board": r.resident.board, "dram_bytes": r.resident.dram_bytes,
            "cycles": r.resident.cycles, "link_bytes": r.resident.link_bytes,
            "tokens_per_s": r.resident.tokens_per_s(),
            "tokens_per_s_fast_link": r.resident.tokens_per_s(FAST_LINK[0]),
            "source": r.resident.source}} for r in results], indent=1))
    _plot(results, out / "quality.png")


def _plot(results, path):
    import matplotlib

    from systolica.host.projection import FAST_LINK
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 7))
    for r in results:
        if r.row.changes.startswith("nothing"):
            continue
        device = r.row.activations != "float"
        best = max(r.tokens_per_s.values(), default=0)
        at = (8 * r.bytes_per_weight, max(r.kl, 1e-8))
        ax.semilogy(*at, "o" if device else "s", color="C0" if device else "C1")
        label = f"{r.row.name}: KL {r.kl:.1e}\n{best:.4f} tok/s"
        if r.resident is not None:
            label += f", {r.resident.tokens_per_s(FAST_LINK[0]):.2f} in DRAM"
        ax.annotate(label, at, fontsize=7,
                    xytext=(6, 4) if device else (6, -22), textcoords="offset points")
    bits = [8 * r.bytes_per_weight for r in results]
    ax.set_xlim(min(bits) - 0.3, max(bits) + 1.2)        # room for the labels on the right
    ax.set_ylim(top=10)                                      # and above the highest
    ax.plot([], [], "o", color="C0", label="device activations")
    ax.plot([], [], "s", color="C1", label="float activations (weight format alone)")
    ax.set_xlabel("bits per weight on the link (a decode step's GEMM frames)")
    ax.set_ylabel("mean KL from the file's model, nats")
    ax.set_title("What each bit buys (labels: best decode tokens/s streamed over a UART;\n"
                 f"in DRAM: the ECPIX-5 with the weights in its DRAM and a "
                 f"{FAST_LINK[0] / 1e6:g} MB/s link)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", linewidth=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
