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
"""

import collections
import dataclasses
import json
import pathlib

import numpy as np

__all__ = ["BoardProjection", "decode_gemms", "measure_board", "project_boards",
           "projection_lines"]

CACHE = pathlib.Path(__file__).resolve().parent.parent / "build" / "projection"
SIM_LINK_BYTES = 16


def _key(k, m, fmt):
    """A measurement's name in the cache: the native GEMMs' activation rows, K, M, format."""
    from .accel_linear import DEFAULT_TERMS

    return f"{DEFAULT_TERMS}x{k},{m},{fmt}"


def decode_gemms(model_file):
    """{(K, M, GGML type name): count} of one decode step's GEMMs (N = 1)."""
    from .llama import LINEARS

    p = model_file.params
    shapes = collections.Counter()
    names = [f"blk.{i}.{w}.weight" for i in range(p.n_layers) for w in LINEARS]
    names.append("output.weight" if "output.weight" in model_file.tensors
                 else "token_embd.weight")
    for name in names:
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

    cfg, path = _sim_config(board)
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


def _sim_config(board):
    """The configuration the board's GEMMs are measured at, and its cache file."""
    from systolica.sim.board import build_key

    base = board.config
    cfg = dataclasses.replace(base, link_bytes=SIM_LINK_BYTES,
                              rx_fifo_words=max(base.rx_fifo_words // SIM_LINK_BYTES, 64))
    return cfg, CACHE / f"{board.name}-{build_key(cfg)}.json"


def _cached(board, shapes):
    _, path = _sim_config(board)
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
