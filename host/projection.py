"""Projected decode speed of the model on every catalog board, from device cycles measured on
the simulated board built at that board's own configuration.

One decode step (one token) runs every linear of every layer and the LM head once: natively with
two activation rows (the token's two int8 terms, `accel_linear.DEFAULT_TERMS`), in W8A8 with one.
Its GEMMs come in a few shapes (K × M, weight format); each distinct one runs once on the
simulated board at the board's configuration (its array, buffers, formats and scale stage) with
a 16-byte simulated link instead of the board's 1-byte UART link, so the count is the array's,
not the link's. The step's array cycles are those counts times how often each shape occurs: an
exact derivation from per-GEMM measurements, not one simulated step. With the board's clock that
is the array bound; the link bound is the bytes the step puts on the link over the UART's
bytes/s: the command frames as the driver frames them for the board's own 1-byte link, plus the
reply frames the same runs returned (at 16-byte words, so their padding is slightly more than a
UART's). A token takes at least the
larger of the two: the device computes while weights stream in.

A board that carries the weights' own GGUF format runs it natively; an int8-only board runs the
same GEMMs in W8A8 (one byte per weight). Measurements are cached in
``build/projection/<board>-<key>.json``, keyed on the simulated board build they came from.

With the weights resident in the board's DRAM (`resident_weights`; the ECPIX-5, the catalog's
board with DRAM), a decode token's time has three bounds (`ResidentProjection`): the device's
cycles at its clock, the DRAM bytes its GEMMs read at the DRAM's peak rate, and what is left on
the link (activations, GEMM_DRAM headers, results) at the board's UART rate. They come from the
per-token figures a generate with resident weights measured (`run_figures`,
`project_run`); the clock is the DRAM controller's system clock, in which the accelerator runs
(one clock domain: how the simulated board is built, and the assumption for the board). A
generate on the simulated board keeps its figures in ``build/projection/resident-<build>.json``
(`save_run`), keyed on the board build, for ``systolica project`` (`load_run`).
"""

import collections
import dataclasses
import json
import pathlib

import numpy as np

__all__ = ["FAST_LINK", "BoardProjection", "ResidentProjection", "decode_gemms", "load_run",
           "measure_board", "project_boards", "project_resident", "project_run", "projection_lines",
           "resident_projection_lines", "run_figures", "save_run", "sim_config"]

CACHE = pathlib.Path(__file__).resolve().parent.parent / "build" / "projection"
SIM_LINK_BYTES = 16
DRAM_BOARD = "ecpix5-85f-dram"     # the catalog board with DRAM
FAST_LINK = (40e6, "USB 2.0 high speed")    # bytes/s a faster link would carry, and what it is


def _key(k, m, fmt):
    """A measurement's name in the cache: the native GEMMs' activation rows, K, M, format."""
    from .accel_linear import DEFAULT_TERMS

    return f"{DEFAULT_TERMS}x{k},{m},{fmt}"


def decode_gemms(model_file):
    """{(K, M, GGML type name): count} of one decode step's GEMMs (N = 1)."""
    from .llama import device_linears

    shapes = collections.Counter()
    for name in device_linears(model_file):
        m, k = model_file.tensor_shape(name)
        shapes[(k, m, model_file.quant_type(name).name.lower())] += 1
    return dict(shapes)


@dataclasses.dataclass
class BoardProjection:
    board: str
    clock_hz: float
    link_bytes_per_s: float
    formats: str              # how the step's weights run ("q4_1+q8_0 native", "int8 W8A8")
    cycles: int               # array cycles of one decode step
    link_bytes: int           # bytes both ways on the link in one decode step
    source: str               # where the cycles come from

    @property
    def array_s(self):
        return self.cycles / self.clock_hz

    @property
    def link_s(self):
        return self.link_bytes / self.link_bytes_per_s

    @property
    def tokens_per_s(self):
        return 1.0 / max(self.array_s, self.link_s)

    @property
    def bound(self):
        return "link" if self.link_s >= self.array_s else "array"


def _random_gemm(rng, k, m, fmt):
    from gguf import GGMLQuantizationType, quants

    from .accel_linear import DEFAULT_TERMS
    from .block_formats import quantize_activation_terms

    raw = quants.quantize(rng.standard_normal((m, k)).astype(np.float32),
                          GGMLQuantizationType[fmt.upper()])
    xq, xd = quantize_activation_terms(rng.standard_normal((1, k)), DEFAULT_TERMS)
    return xq, xd, raw


def measure_board(board, shapes, *, log=None):
    """{"K,M,fmt": [cycles, bytes on the link]} for each decode GEMM shape on the simulated board
    at ``board``'s configuration (cached)."""
    from systolica.sim.board import board_executable

    from .driver import Driver
    from .link import SimulatedBoardLink

    cfg, path = sim_config(board)
    if path.exists():
        cached = json.loads(path.read_text())
        if set(cached) >= {_key(*shape) for shape in shapes}:
            return cached
    exe = board_executable(cfg, **({} if log is None else {"log": log}))
    rng = np.random.default_rng(0)
    out = {}
    drv = Driver(SimulatedBoardLink(cfg, executable=exe), timeout=120)
    try:
        for k, m, fmt in sorted(shapes):
            before = (drv.stats.device_cycles, drv.stats.bytes_in)
            if fmt in cfg.formats:
                xq, xd, raw = _random_gemm(rng, k, m, fmt)
                drv.gemm_blocks(xq, xd, raw, fmt)
                sent = _block_bytes_out(board.config, xq, xd, raw, fmt)
            else:          # W8A8 on an int8 board: one byte per weight
                a = rng.integers(-127, 128, (1, k), dtype=np.int8)
                w = rng.integers(-127, 128, (k, m), dtype=np.int8)
                drv.gemm(a, w)
                sent = _int8_bytes_out(board.config, a, w)
            out[_key(k, m, fmt)] = [drv.stats.device_cycles - before[0],
                                     sent + drv.stats.bytes_in - before[1]]
    finally:
        drv.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    return out


def _plan(cfg, n, k, m):
    from .gemm_plan import plan

    return plan(cfg, n, k, m)


def _block_bytes_out(cfg, xq, xd, raw, fmt):
    """Bytes `Driver.gemm_blocks` sends for this GEMM to a device at ``cfg``."""
    from .block_formats import FORMATS
    from .frames import gemm_blocks_command, load_a_blocks_command

    n = xq.shape[0]
    _, _, m_step = _plan(cfg, n, xq.shape[1], raw.shape[0])
    sent = len(load_a_blocks_command(xq, xd, cfg))
    for c0 in range(0, raw.shape[0], m_step):
        sent += len(gemm_blocks_command(raw[c0:c0 + m_step], FORMATS[fmt], n, cfg))
    return sent


def _int8_bytes_out(cfg, a, w):
    """Bytes `Driver.gemm` sends for this GEMM to a device at ``cfg``."""
    from .frames import gemm_command, load_a_command

    (n, k), m = a.shape, w.shape[1]
    _, k_step, m_step = _plan(cfg, n, k, m)
    sent = 0
    for k0 in range(0, k, k_step):
        sent += len(load_a_command(a[:, k0:k0 + k_step], cfg))
        for c0 in range(0, m, m_step):
            sent += len(gemm_command(w[k0:k0 + k_step, c0:c0 + m_step], n, cfg))
    return sent


def project_boards(model_file, boards=None, *, log=None, measure=True):
    """A `BoardProjection` per catalog board (or the named ones). With ``measure`` False only
    boards with cached measurements are projected."""
    from systolica.boards.catalog import BOARDS
    from systolica.boards.report import link_bytes_per_s

    shapes = decode_gemms(model_file)
    results = []
    for name in boards or BOARDS:
        board = BOARDS[name]
        if not measure and not _cached(board, shapes):
            continue
        counts = measure_board(board, shapes, log=log)
        cycles = link = 0
        kinds = set()
        for (k, m, fmt), n in shapes.items():
            c, b = counts[_key(k, m, fmt)]
            cycles += n * c
            link += n * b
            kinds.add(fmt if fmt in board.config.formats else "int8")
        native = sorted(kinds - {"int8"})
        formats = "+".join(native) + " native" if native else "int8 W8A8"
        if native and "int8" in kinds:
            formats += " (+ int8 W8A8)"
        results.append(BoardProjection(
            board=name, clock_hz=board.clk_freq, link_bytes_per_s=link_bytes_per_s(board.baudrate),
            formats=formats, cycles=cycles, link_bytes=link,
            source=f"per-GEMM device cycles on the simulated board at each board's own "
                   f"configuration (link {SIM_LINK_BYTES} B/cycle) x how often each GEMM occurs"))
    return results


def sim_config(board):
    """The configuration the board's GEMMs are measured at, and its cache file."""
    from systolica.sim.board import build_key

    base = board.config
    # row_hold (a result row stage for byte-wide links) cannot be built with a wide link; it
    # only decides how a result row waits for the framer, which the board's UART paces anyway.
    cfg = dataclasses.replace(base, link_bytes=SIM_LINK_BYTES,
                              rx_fifo_words=max(base.rx_fifo_words // SIM_LINK_BYTES, 64),
                              row_hold=False)
    return cfg, CACHE / f"{board.name}-{build_key(cfg)}.json"


def _cached(board, shapes):
    _, path = sim_config(board)
    if not path.exists():
        return False
    return set(json.loads(path.read_text())) >= {_key(*shape) for shape in shapes}


def projection_lines(projections):
    """The projection as a table for a person."""
    lines = [f"{'board':<15} {'weights':<22} {'clock':>8} {'array cycles':>13} {'array s':>8} "
             f"{'link MB':>8} {'link s':>8} {'tokens/s':>9}  bound"]
    for p in projections:
        lines.append(f"{p.board:<15} {p.formats:<22} {p.clock_hz / 1e6:>5.0f} MHz {p.cycles:>13,} "
                     f"{p.array_s:>8.4f} {p.link_bytes / 1e6:>8.2f} {p.link_s:>8.1f} "
                     f"{p.tokens_per_s:>9.4f}  {p.bound}")
    if projections:
        lines.append(f"(cycles: {projections[0].source}; link: the board's UART at 8N1)")
    return lines


@dataclasses.dataclass
class ResidentProjection:
    """A decode token on a board with the weights resident in its DRAM, from measured figures
    per token; each bound in seconds (`bounds`), the token taking at least the largest."""

    board: str
    clock_hz: float           # the accelerator's clock (the DRAM controller's system clock)
    cycles: float             # device cycles per token
    dram_bytes: float         # DRAM bytes read per token
    dram_bytes_per_s: float   # the DRAM's peak read rate
    link_bytes: float         # link bytes per token, both ways
    link_bytes_per_s: float   # the board's UART
    source: str               # where the per-token figures come from

    def bounds(self, link_bytes_per_s=None):
        """{"device cycles", "DRAM", "link"}: seconds per token each (the link at its own rate,
        or at ``link_bytes_per_s``)."""
        return {"device cycles": self.cycles / self.clock_hz,
                "DRAM": self.dram_bytes / self.dram_bytes_per_s,
                "link": self.link_bytes / (link_bytes_per_s or self.link_bytes_per_s)}

    def bound(self, link_bytes_per_s=None):
        bounds = self.bounds(link_bytes_per_s)
        return max(bounds, key=bounds.get)

    def tokens_per_s(self, link_bytes_per_s=None):
        return 1.0 / max(self.bounds(link_bytes_per_s).values())


def project_resident(cycles, dram_bytes, link_bytes, rate, *, board=DRAM_BOARD, source=""):
    """A `ResidentProjection` for catalog board ``board`` from per-token ``cycles``,
    ``dram_bytes`` and ``link_bytes`` and its DRAM's `dram_rate.DramRate` (clock and peak)."""
    from systolica.boards.catalog import BOARDS
    from systolica.boards.report import link_bytes_per_s

    return ResidentProjection(
        board=board, clock_hz=rate.clock_hz, cycles=cycles, dram_bytes=dram_bytes,
        dram_bytes_per_s=rate.peak_bytes_per_s, link_bytes=link_bytes,
        link_bytes_per_s=link_bytes_per_s(BOARDS[board].baudrate), source=source)


def resident_projection_lines(p):
    """The projection for a person: each bound, the tokens/s and the bound that dominates, then
    the same with a `FAST_LINK`."""
    from systolica.boards.catalog import BOARDS

    board = BOARDS[p.board]
    b = p.bounds()
    fast, fast_name = FAST_LINK
    rows = [("device cycles", f"{p.cycles:,.0f}", f"{p.clock_hz / 1e6:g} MHz"),
            ("DRAM", f"{p.dram_bytes / 1e6:.2f} MB", f"{p.dram_bytes_per_s / 1e6:.0f} MB/s (peak)"),
            ("link", f"{p.link_bytes / 1e6:.3f} MB",
             f"{p.link_bytes_per_s / 1e3:.0f} kB/s ({board.baudrate / 1e6:g} Mbaud UART, 8N1)")]
    lines = [
        f"projected decode speed on the {board.description} with the weights resident in its "
        f"DRAM ({p.source}; the accelerator in the DRAM controller's {p.clock_hz / 1e6:g} MHz "
        "system clock domain, one clock for both):",
        f"  {'bound':<14} {'per token':>14}  {'at':<32} {'seconds':>9}",
    ]
    for (name, amount, rate), seconds in zip(rows, b.values(), strict=True):
        lines.append(f"  {name:<14} {amount:>14}  {rate:<32} {seconds:>9.4f}")
    lines += [
        f"  -> {p.tokens_per_s():.4f} tokens/s, bound by the {p.bound()}",
        f"  with a {fast / 1e6:g} MB/s link ({fast_name}): link {p.bounds(fast)['link']:.4f} s "
        f"-> {p.tokens_per_s(fast):.3f} tokens/s, bound by the {p.bound(fast)}",
    ]
    return lines


def run_figures(result):
    """The per-token figures of a generate with resident weights (a `GenerationResult`): the
    means over its decode steps (the prefill's if it had none)."""
    steps = result.steps[1:] or result.steps[:1]

    def mean(values):
        return sum(values) / len(steps)

    what = "per decode token" if result.steps[1:] else "of the prefill"
    if getattr(result, "device_argmax", False):
        what += " (the LM head's greedy token found on the device, no logits on the link)"
    return {"what": what,
            "steps": len(steps),
            "cycles": mean(s.device_cycles for s in steps),
            "dram_bytes": mean(s.dram_bytes for s in steps),
            "link_bytes": mean(s.bytes_out + s.result_bytes for s in steps)}


def project_run(figures, config, rate, *, board=DRAM_BOARD):
    """The `ResidentProjection` for ``board`` from `run_figures` measured on a device of
    ``config`` whose DRAM has the `dram_rate.DramRate` ``rate``."""
    from systolica.boards.catalog import BOARDS

    own = BOARDS[board].config
    shape = ("rows", "cols", "lane_weights", "block_period", "link_bytes")
    same = all(getattr(own, f) == getattr(config, f) for f in shape)
    source = (f"device cycles, DRAM and link bytes {figures['what']} as measured on the "
              f"simulated board's {config.rows}x{config.cols} array with {config.link_bytes}-byte "
              f"link words; " + ("the board's build has the same array, lane words and link words"
                                 if same else
                                 f"the board's own build is {own.rows}x{own.cols} with "
                                 f"{own.lane_weights}-weight lane words and "
                                 f"{own.link_bytes}-byte link words"))
    return project_resident(figures["cycles"], figures["dram_bytes"], figures["link_bytes"],
                            rate, board=board, source=source)


def _run_path(config):
    from systolica.sim.board import build_key

    return CACHE / f"resident-{build_key(config)}.json"


def save_run(config, figures):
    """Keep `run_figures` measured on the simulated board of ``config`` for `load_run`."""
    path = _run_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=1))


def load_run(config):
    """The `run_figures` last saved for the simulated board of ``config`` (its current build),
    or None."""
    path = _run_path(config)
    return json.loads(path.read_text()) if path.exists() else None
