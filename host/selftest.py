"""A device's bring-up check: what it says it is, whether it computes right in every format it
carries, and how fast its link really is, as a report a person reads at a glance."""

import dataclasses
import time

import numpy as np

from .block_formats import FORMATS, block_gemm_reference, quantize_activations

__all__ = ["Check", "selftest"]

# What the board top drives its LEDs with (boards/top.py), in the catalog's LED order.
LED_MEANINGS = ("heartbeat: blinks while the clock runs",
                "receive activity: lit while received bytes wait in the FIFO",
                "UART error: lit after a bad stop bit (check --baud) or an overrun")

_DRAM_SELFTEST_ADDRESS = 0      # where the DRAM checks store their weights (overwritten)


@dataclasses.dataclass
class Check:
    name: str
    ok: bool
    detail: str


def _config_differences(got, want):
    fields = [f.name for f in dataclasses.fields(want) if f.compare]
    return [f"{name} {getattr(got, name)} (expected {getattr(want, name)})" for name in fields
            if getattr(got, name) != getattr(want, name)]


def _identify(driver, board, catalog):
    cfg = driver.config
    claims = [name for name, b in catalog.items() if b.config == cfg]
    said = (f"{cfg.rows}x{cfg.cols} array, link {cfg.link_bytes} B, formats "
            f"{', '.join(cfg.formats)}")
    if board is None:
        which = (f"the configuration of {', '.join(claims)}" if claims
                 else "no catalog board's configuration (a simulated board?)")
        return Check("identify", True, f"{said}: {which}")
    diffs = _config_differences(cfg, board.config)
    if diffs:
        return Check("identify", False, f"the device is not a {board.name} build: "
                     + "; ".join(diffs) + ". Load this board's bitstream (systolica program "
                     f"--board {board.name})")
    return Check("identify", True, f"{said}: the {board.name} configuration")


def _int8_operands(cfg, rng):
    n, k, m = 2 * cfg.rows + 1, min(cfg.max_k, 96), 2 * cfg.cols + 1
    a = rng.integers(-128, 128, (n, k), dtype=np.int8)
    w = rng.integers(-128, 128, (k, m), dtype=np.int8)
    return (a,), w, a.astype(np.int64) @ w.astype(np.int64)


def _block_operands(cfg, rng, name):
    from gguf import GGMLQuantizationType, quants

    n, k, m = cfg.rows + 1, min(cfg.max_k // 32, 3) * 32, cfg.cols + 1
    raw = np.asarray(quants.quantize(rng.standard_normal((m, k)).astype(np.float32),
                                     GGMLQuantizationType[name.upper()]))
    xq, xd = quantize_activations(rng.standard_normal((n, k)))
    return (xq, xd), raw, block_gemm_reference(xq, xd, raw, name)


def _gemm_check(driver, rng, name, *, dram=False):
    """A GEMM in format ``name`` against numpy or the block model; with ``dram``, its weights
    stored in the device's DRAM first."""
    cfg = driver.config
    acts, weights, want = (_int8_operands(cfg, rng) if name == "int8"
                           else _block_operands(cfg, rng, name))
    if dram:
        weights = driver.store_gemm_weights(weights, name, address=_DRAM_SELFTEST_ADDRESS)
    if name == "int8":
        got = driver.gemm(*acts, weights)
    else:
        got = driver.gemm_blocks(*acts, weights, FORMATS[name]).view(np.uint32)
    n, m = want.shape
    k = acts[0].shape[1]
    bad = int((got != want).sum())
    model = "numpy" if name == "int8" else "the block model"
    exact = "exact" if name == "int8" else "bit-exact with the block model"
    where = f", weights from DRAM 0x{_DRAM_SELFTEST_ADDRESS:x}" if dram else ""
    return Check(f"{'DRAM' if dram else 'GEMM'} {name}", not bad, f"{n}x{k}x{m}{where}: " + (
        exact if not bad else f"{bad} of {n * m} results differ from {model}"))


def _line(driver):
    """The device's line error counts (IDENTIFY again) against theirs at the start."""
    st = driver.stats
    start = (st.line_framing_errors, st.line_overruns)
    driver.identify()
    now = (st.line_framing_errors, st.line_overruns)
    new = [f"{b - a} {what}" for a, b, what in zip(start, now, ("framing errors", "overruns"),
                                                   strict=True) if b != a]
    detail = (f"{now[0]} framing errors, {now[1]} overruns since power-up (IDENTIFY)"
              + (f"; {' and '.join(new)} during this selftest: a wrong --baud or a noisy line"
                 if new else ""))
    return Check("line", not new, detail)


def _throughput(driver, rng):
    """Host → device bytes/s of a weight stream, device → host bytes/s of a result stream."""
    cfg = driver.config
    k = min(cfg.max_k, 512)
    a = rng.integers(-128, 128, (1, k), dtype=np.int8)
    w = rng.integers(-128, 128, (k, 8 * cfg.cols), dtype=np.int8)
    before, t0 = driver.stats.bytes_out, time.monotonic()
    driver.gemm(a, w)
    out_rate = (driver.stats.bytes_out - before) / (time.monotonic() - t0)
    rows = min(cfg.rows * max(cfg.act_depth // 32, 1), 64)
    a = rng.integers(-128, 128, (rows, 1), dtype=np.int8)
    w = rng.integers(-128, 128, (1, 8 * cfg.cols), dtype=np.int8)
    before, t0 = driver.stats.bytes_in, time.monotonic()
    driver.gemm(a, w)
    in_rate = (driver.stats.bytes_in - before) / (time.monotonic() - t0)
    return out_rate, in_rate


def selftest(driver, *, board=None, catalog=None, model_file=None, baudrate=None, seed=0):
    """Run the checks on the device behind ``driver``; returns (checks, report lines).

    A device with DRAM also multiplies in each format with its weights stored in the DRAM (at
    its start: what was there is overwritten).

    ``board`` is the catalog entry the device should be (None: only report which it matches);
    ``baudrate`` the serial line rate, for the theoretical link rate (None: simulated link).
    """
    if catalog is None:
        from systolica.boards.catalog import BOARDS

        catalog = BOARDS
    rng = np.random.default_rng(seed)
    checks = [_identify(driver, board, catalog)]
    cfg = driver.config
    formats = ["int8", *(name for name in cfg.formats if name != "int8")]
    for name in formats:
        checks.append(_gemm_check(driver, rng, name))
    if cfg.dram_mib:
        for name in formats:
            checks.append(_gemm_check(driver, rng, name, dram=True))
    out_rate, in_rate = _throughput(driver, rng)
    checks.append(_line(driver))
    lines = [f"{'PASS' if c.ok else 'FAIL'}  {c.name:<10} {c.detail}" for c in checks]
    link = f"link: {out_rate / 1e3:,.1f} kB/s to the device, {in_rate / 1e3:,.1f} kB/s back"
    if baudrate:
        peak = baudrate / 10
        link += (f" (the UART's {peak / 1e3:,.1f} kB/s at {baudrate} baud, 8N1: "
                 f"{out_rate / peak:.0%} and {in_rate / peak:.0%})")
    lines.append(link)
    if model_file is not None:
        from .quality import decode_bytes_per_weight, weights_per_token

        native = {"q4_1", "q8_0"} <= set(cfg.formats)
        bpw = decode_bytes_per_weight(model_file, cfg, int8=not native)
        per_token = bpw * weights_per_token(model_file)
        lines.append(f"SmolLM2 decode at this link rate: {out_rate / per_token:.4f} tokens/s "
                     f"({per_token / 1e6:.1f} MB of {'native GGUF blocks' if native else 'int8'}"
                     " weights a token)")
    if board is not None:
        for spec, meaning in zip(board.leds, LED_MEANINGS, strict=False):
            lines.append(f"LED {' '.join(map(str, spec))}: {meaning}")
    failed = [c.name for c in checks if not c.ok]
    lines.append("selftest: " + ("all checks passed" if not failed
                                 else f"FAILED ({', '.join(failed)})"))
    return checks, lines
