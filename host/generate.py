"""`systolica generate`: text generation with the whole model, on the float path or with every
linear (the LM head included) on the accelerator.

The prompt is tokenized (optionally wrapped in the file's chat template), run as one prefill,
then one token per step with a `KVCache`; the text streams out as whole UTF-8 characters. On the
accelerator each step can also run the float model (its own cache, fed the tokens the
accelerator path chose) and compare the last position's logits; every step's device cycles,
link bytes and where the wall time went are collected in the result. On a device with DRAM the
weights are uploaded there once (`resident_weights`) and multiplied from there; each step then
also counts the DRAM bytes its GEMMs read.
"""

import concurrent.futures
import contextlib
import dataclasses
import math
import time

import numpy as np

from .accel_linear import DEFAULT_TERMS, BlockLinear, block_format, compare
from .driver import Driver
from .llama import FloatLinear, LlamaModel, context_length
from .resident_weights import LARGE_LINEAR_BYTES
from .sampling import Sampler
from .text_stream import TextStream, token_bytes
from .timed_link import TimedLink

__all__ = [
    "AcceleratorBackend",
    "GenerationResult",
    "Prompt",
    "StepFigures",
    "generate",
    "open_accelerator",
    "prepare_prompt",
    "summary_lines",
]


@dataclasses.dataclass
class Prompt:
    """What a generation starts from."""

    text: str                 # the text tokenized (the chat template's rendering with --chat)
    ids: list                 # its token ids
    stop_ids: tuple           # generation ends on any of these (not shown in the text)


def prepare_prompt(model_file, prompt, *, chat=False):
    """Tokenize ``prompt`` (with ``chat``: as a user message in the file's chat template) and
    find the stop tokens: ``tokenizer.ggml.eos_token_id``, and with ``chat`` the template's
    end-of-turn token if it is another one.

    Raises ValueError for an empty prompt or one longer than the model's context.
    """
    from .tokenizer import gguf_tokenizer

    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("the prompt is empty")
    stop = []
    with contextlib.suppress(KeyError):
        stop.append(int(model_file.field("tokenizer.ggml.eos_token_id")))
    if chat:
        from .chat import chat_tokenizer, end_of_turn_id, render_chat

        text = render_chat(model_file, prompt)
        ids = chat_tokenizer(model_file).encode(text, add_special_tokens=False).ids
        turn = end_of_turn_id(model_file)
        if turn is not None and turn not in stop:
            stop.append(turn)
    else:
        text = prompt
        ids = gguf_tokenizer(model_file).encode(text).ids
    limit = context_length(model_file)
    if len(ids) > limit:
        raise ValueError(f"the prompt is {len(ids)} tokens, longer than the model's context of "
                         f"{limit} tokens (llama.context_length)")
    return Prompt(text=text, ids=list(ids), stop_ids=tuple(stop))


@dataclasses.dataclass
class AcceleratorBackend:
    """The accelerator path's pieces: the timed link, the driver on it, the block linear, and
    the weights resident in the device's DRAM (None: streamed)."""

    link: TimedLink
    driver: Driver
    linear: BlockLinear
    resident: object = None

    def close(self):
        self.driver.close()


def linear_formats(model_file):
    """The block formats the model's linears (every 2-D weight: the layers' projections and the
    tied LM head) are stored in, sorted."""
    return sorted({block_format(model_file, name).name for name in model_file.tensors
                   if name.endswith(".weight") and len(model_file.tensor_shape(name)) == 2})


def open_accelerator(link, model_file, *, timeout=30.0, terms=DEFAULT_TERMS, resident=None,
                     show_progress=None):
    """Wrap ``link`` in a `TimedLink`, open a `Driver` on it (IDENTIFY) and a `BlockLinear`
    (``terms`` int8 terms per activation) without its per-call float reference (the per-step
    check compares with the float model).

    ``resident``: None (the default) uploads the weights to the device's DRAM when its
    IDENTIFY reports DRAM (`resident_weights.upload`, progress bars on stderr with
    ``show_progress``) and streams them otherwise; False always streams them; True requires
    DRAM (ValueError without). ValueError if the model does not fit the DRAM,
    `resident_weights.ResidentWeightsCorrupt` if the DRAM does not keep them; the driver is
    closed then."""
    from .resident_weights import upload

    timed = TimedLink(link)
    driver = Driver(timed, timeout=timeout)
    try:
        needed = linear_formats(model_file)
        missing = [name for name in needed if name not in driver.config.formats]
        if missing:
            raise ValueError(
                f"the device carries the weight formats {', '.join(driver.config.formats)}, but "
                f"the model's linears are stored as {', '.join(needed)}: {', '.join(missing)} "
                "missing. Use a board whose bitstream carries them (`systolica boards`: "
                "ulx3s-25f, ulx3s-85f-gguf, ecpix5-85f) or the simulated board (no --port)")
        if resident and not driver.config.dram_mib:
            raise ValueError("resident weights need a device with DRAM; this one's IDENTIFY "
                             "reports none (dram_mib = 0)")
        stored = None
        if resident or (resident is None and driver.config.dram_mib):
            stored = upload(driver, model_file, show_progress=show_progress)
    except BaseException:
        driver.close()
        raise
    linear = BlockLinear(driver, model_file, float_check=False, defer_check=True, terms=terms,
                         resident=stored.weights if stored else None)
    return AcceleratorBackend(timed, driver, linear, stored)


@dataclasses.dataclass
class StepFigures:
    """One step: the prefill (``kind`` "prefill", every prompt position) or one decode token.

    ``wall`` is the step on the generating path, and is ``link_seconds + linear_host_seconds +
    model_host_seconds``; the float check's own time is ``check_seconds``: it runs on a worker
    thread while the device computes the same step, so it is not part of ``wall``.
    """

    kind: str
    tokens: int                   # positions the step ran
    token_id: int                 # the token it chose
    wall: float
    link_seconds: float           # blocked in the link's write/read calls
    linear_host_seconds: float    # in the linears on the host, outside the link
    model_host_seconds: float     # the rest: the model's numpy outside the linears, sampling
    quantize_seconds: float = 0.0      # of linear_host_seconds: quantizing activations
    exact_seconds: float = 0.0         # the bit-exact reference check
    float_ref_seconds: float = 0.0     # BlockLinear's per-call float reference (if on)
    device_cycles: int = 0
    weight_bytes: int = 0         # host → device in GEMM frames
    act_bytes: int = 0            # host → device in LOAD_A frames
    result_bytes: int = 0         # device → host
    bytes_out: int = 0            # host → device, every frame (GEMM_DRAM headers too)
    device_gemms: int = 0
    dram_bytes: int = 0           # read from the device's DRAM by the GEMM_DRAMs
    dram_cycles: int = 0          # device cycles of the linears whose weights were resident
    large_dram_bytes: int = 0     # the same two for the large linears (`LARGE_LINEAR_BYTES`)
    large_dram_cycles: int = 0
    check_seconds: float = 0.0    # the float model's step (check only)
    cosine: float | None = None   # last-position logits vs the float model's
    argmax: int = -1              # the generating path's greedy token
    float_argmax: int | None = None


@dataclasses.dataclass
class GenerationResult:
    """What `generate` produced and measured."""

    prompt_ids: list
    ids: list                     # generated token ids (a stop token included, last)
    text: str                     # their text (stop tokens left out)
    stop_reason: str              # "end of sequence", "token limit" or "context full"
    steps: list                   # StepFigures: the prefill, then one per decode token
    divergence: int | None        # first step whose greedy tokens differ (None: none; checked)
    all_exact: bool | None        # every device GEMM bit-exact (None: no device)
    backend: str
    wall: float                   # the whole generation, check included
    large_linears: tuple = ()     # the weights counted as large linears (resident only)

    @property
    def cosines(self):
        """Per-step cosine of the last-position logits with the float model's (checked)."""
        return [s.cosine for s in self.steps if s.cosine is not None]

    @property
    def checked(self):
        return bool(self.cosines)


class _TimedLinear:
    """Forwards ``linear(x, tensor)`` and adds up the seconds spent in it."""

    def __init__(self, linear):
        self.linear = linear
        self.seconds = 0.0

    def __call__(self, x, tensor):
        started = time.perf_counter()
        try:
            return self.linear(x, tensor)
        finally:
            self.seconds += time.perf_counter() - started


def _check_tokens(tokens):
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
        raise ValueError(f"tokens must be a positive integer, not {tokens!r}")


def generate(model_file, prompt, *, linear=None, tokens=16, sampler=None, check=False,
             driver=None, link=None, write=None):
    """Generate up to ``tokens`` tokens after ``prompt``.

    Parameters
    ----------
    model_file : ModelFile
    prompt : Prompt
        From `prepare_prompt`.
    linear : callable, optional
        The generating path's ``linear(x, tensor)``: default `FloatLinear` (the float backend);
        a `BlockLinear` for the accelerator (its records give the step's host-time breakdown).
    tokens : int
        At most this many tokens, the stop token included.
    sampler : Sampler, optional
        Default greedy.
    check : bool
        Also run the float model on the same tokens every step and compare the last position's
        logits (cosine; and where the greedy tokens first differ).
    driver, link : Driver, TimedLink, optional
        The accelerator path's, for each step's device and link figures.
    write : callable, optional
        ``write(text)`` as whole characters are decoded (e.g. ``sys.stdout.write``).

    Returns
    -------
    GenerationResult
    """
    _check_tokens(tokens)
    sampler = sampler or Sampler()
    started = time.perf_counter()
    base = linear or FloatLinear(model_file)
    timed = _TimedLinear(base)
    model = LlamaModel(model_file, timed)
    cache = model.new_cache()
    reference = LlamaModel(model_file, FloatLinear(model_file)) if check else None
    ref_cache = reference.new_cache() if check else None
    stream = TextStream(token_bytes(model_file))
    records = getattr(base, "records", None)

    pool = concurrent.futures.ThreadPoolExecutor(1, "float-check") if check else None
    steps, out, stop_reason, divergence = [], [], "token limit", None
    feed = list(prompt.ids)
    while True:
        stats = driver.stats if driver is not None else None
        before_stats = dataclasses.replace(stats) if stats is not None else None
        before_link = link.total_seconds if link is not None else 0.0
        before_linear = timed.seconds
        before_records = len(records) if records is not None else 0
        t0 = time.perf_counter()
        if check:       # the float model's step runs on a worker thread beside the device's
            ref_step = pool.submit(_timed_forward, reference, list(feed), ref_cache)
        logits = model.forward(feed, cache)[-1]
        token = sampler(logits)
        wall = time.perf_counter() - t0
        check_seconds = cosine = float_argmax = None
        if check:
            ref_logits, check_seconds = ref_step.result()
            cosine = compare(logits, ref_logits)[1]
            float_argmax = int(np.argmax(ref_logits))
        if hasattr(base, "settle"):       # deferred bit-exact checks of this step's GEMMs
            base.settle()

        step = _figures("prefill" if not steps else "decode", len(feed), token, wall,
                        linear_seconds=timed.seconds - before_linear,
                        link_seconds=(link.total_seconds - before_link) if link else 0.0,
                        new_records=records[before_records:] if records is not None else [],
                        stats=stats, before=before_stats)
        step.argmax = int(np.argmax(logits))
        if check:
            step.check_seconds = check_seconds
            step.cosine = cosine
            step.float_argmax = float_argmax
            if divergence is None and step.float_argmax != step.argmax:
                divergence = len(steps)
        steps.append(step)
        out.append(token)

        if token in prompt.stop_ids:
            stop_reason = "end of sequence"
            break
        if write is not None:
            piece = stream.push(token)
            if piece:
                write(piece)
        else:
            stream.push(token)
        if len(out) >= tokens:
            break
        if cache.length >= cache.capacity:
            stop_reason = "context full"
            break
        feed = [token]
    if pool is not None:
        pool.shutdown()
    tail = stream.finish()
    if tail and write is not None:
        write(tail)
    all_exact = None
    if records is not None and records and hasattr(records[0], "exact"):
        all_exact = all(r.exact for r in records)
    large = dict.fromkeys(r.weight for r in records or () if _large(r))
    return GenerationResult(
        prompt_ids=list(prompt.ids), ids=out, text=stream.text, stop_reason=stop_reason,
        steps=steps, divergence=divergence if check else None, all_exact=all_exact,
        backend=getattr(base, "name", type(base).__name__),
        wall=time.perf_counter() - started, large_linears=tuple(large))


def _large(record):
    return getattr(record, "stored_bytes", 0) >= LARGE_LINEAR_BYTES


def _timed_forward(model, feed, cache):
    started = time.perf_counter()
    logits = model.forward(feed, cache)[-1]
    return logits, time.perf_counter() - started


def _figures(kind, tokens, token, wall, *, linear_seconds, link_seconds, new_records, stats,
             before):
    step = StepFigures(
        kind=kind, tokens=tokens, token_id=int(token), wall=wall, link_seconds=link_seconds,
        linear_host_seconds=max(linear_seconds - link_seconds, 0.0),
        model_host_seconds=max(wall - linear_seconds, 0.0),
        quantize_seconds=sum(getattr(r, "quantize_seconds", 0.0) for r in new_records),
        exact_seconds=sum(getattr(r, "exact_seconds", 0.0) for r in new_records),
        float_ref_seconds=sum(getattr(r, "float_seconds", 0.0) for r in new_records))
    resident = [r for r in new_records if getattr(r, "dram_bytes", 0)]
    step.dram_bytes = sum(r.dram_bytes for r in resident)
    step.dram_cycles = sum(r.device_cycles for r in resident)
    step.large_dram_bytes = sum(r.dram_bytes for r in resident if _large(r))
    step.large_dram_cycles = sum(r.device_cycles for r in resident if _large(r))
    if stats is not None:
        step.device_cycles = stats.device_cycles - before.device_cycles
        step.weight_bytes = stats.weight_bytes_out - before.weight_bytes_out
        step.act_bytes = stats.act_bytes_out - before.act_bytes_out
        step.result_bytes = stats.bytes_in - before.bytes_in
        step.bytes_out = stats.bytes_out - before.bytes_out
        step.device_gemms = stats.device_gemms - before.device_gemms
    return step


def _mean(values):
    values = list(values)
    return sum(values) / len(values) if values else math.nan


def _resident_lines(result, steps, label, rate):
    """Link bytes, DRAM bytes and cycles of the steps (means), and the DRAM read bandwidth."""
    out, back = _mean(s.bytes_out for s in steps), _mean(s.result_bytes for s in steps)
    lines = [f"weights from the device's DRAM, {label}: link {(out + back) / 1e6:.3f} MB "
             f"({out / 1e6:.3f} MB out, {back / 1e6:.3f} MB in); DRAM read "
             f"{_mean(s.dram_bytes for s in steps) / 1e6:.2f} MB; "
             f"{_mean(s.device_cycles for s in steps):,.0f} device cycles"]
    if rate is None:
        return lines
    peak = rate.peak_bytes_per_cycle

    def bandwidth(dram, cycles):
        dram, cycles = sum(dram), sum(cycles)
        per_cycle = dram / cycles if cycles else math.nan
        return f"{per_cycle:.2f} B/cycle = {per_cycle / peak:.1%}"

    large = ", ".join(result.large_linears) or "none"
    lines.append(
        f"DRAM read bandwidth during the GEMMs ({label}; DRAM bytes / device cycles of the "
        f"GEMM_DRAMs, of the controller's peak of {peak:g} B/cycle, {rate.source}): "
        f"all linears {bandwidth((s.dram_bytes for s in steps), (s.dram_cycles for s in steps))}"
        f"; large linears ({large}: {LARGE_LINEAR_BYTES / 2**20:g} MiB or more stored) "
        f"{bandwidth((s.large_dram_bytes for s in steps), (s.large_dram_cycles for s in steps))}"
        f"; refresh leaves reads at most {rate.refresh_ceiling:.1%}")
    return lines


def summary_lines(result, dram_rate=None):
    """A few lines for a person: tokens, the float check, wall time per token, device figures;
    with resident weights, per decode token the link and DRAM bytes, and (given the device's
    `dram_rate.DramRate`) the DRAM read bandwidth the GEMMs achieved."""
    steps = result.steps
    prefill, decode = steps[0], steps[1:]
    lines = [f"{len(result.ids)} tokens generated after a prompt of {len(result.prompt_ids)} "
             f"(stopped: {result.stop_reason})", f"linears: {result.backend}"]
    if result.checked:
        cos = result.cosines
        listed = " ".join(f"{c:.5f}" for c in cos) if len(cos) <= 16 else f"mean {_mean(cos):.5f}"
        where = "none" if result.divergence is None else f"step {result.divergence}"
        lines.append(f"vs the float model: logits cosine per step (min {min(cos):.7f}, "
                     f"1 - min = {1 - min(cos):.1e}): {listed}")
        lines.append(f"first step whose greedy token differs from the float model's: {where}")
    per_token = _mean(s.wall for s in decode)
    line = f"wall: prefill {prefill.wall:.2f} s ({prefill.tokens} tokens)"
    if decode:
        line += f", decode {per_token:.2f} s/token"
    check = sum(s.check_seconds for s in steps)
    if check:
        line += f"; float check {check:.2f} s (beside the device, on a second thread)"
    lines.append(line + f"; total {result.wall:.2f} s")
    if any(s.device_cycles for s in steps):
        d = decode or [prefill]
        lines.append(
            f"device: prefill {prefill.device_cycles} cycles, "
            f"{prefill.bytes_out} bytes out; per decode token "
            f"{_mean(s.device_cycles for s in d):.0f} cycles, "
            f"{_mean(s.bytes_out for s in d):.0f} bytes out, "
            f"{_mean(s.result_bytes for s in d):.0f} bytes in")
        if any(s.dram_bytes for s in steps):
            lines += _resident_lines(result, d, "per decode token" if decode else "in the prefill",
                                     dram_rate)
        link = sum(s.link_seconds for s in steps)
        host = sum(s.linear_host_seconds for s in steps)
        quantize = sum(s.quantize_seconds for s in steps)
        exact = sum(s.exact_seconds for s in steps)
        float_ref = sum(s.float_ref_seconds for s in steps)
        rest = sum(s.model_host_seconds for s in steps)
        lines.append(f"wall went to: the link {link:.2f} s; linears on the host {host:.2f} s "
                     f"(quantizing {quantize:.2f}, bit-exact check {exact:.2f}, "
                     + (f"float reference {float_ref:.2f}, " if float_ref > 0.01 else "")
                     + f"driver {max(host - quantize - exact - float_ref, 0):.2f}); "
                     f"the rest of the model {rest:.2f} s")
    if result.all_exact is not None:
        gemms = sum(s.device_gemms for s in steps)
        lines.append(f"all {gemms} device GEMMs bit-exact with the block model" if result.all_exact
                     else "NOT every device GEMM was bit-exact with the block model")
    return lines
