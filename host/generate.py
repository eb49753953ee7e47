"""`systolica generate`: text generation with the whole model, on the float path or with every
linear (the LM head included) on the accelerator.

The prompt is tokenized (optionally wrapped in the file's chat template), run as one prefill,
then one token per step with a `KVCache`; the text streams out as whole UTF-8 characters. On the
accelerator each step can also run the float model (its own cache, fed the tokens the
accelerator path chose) and compare the last position's logits; every step's device cycles,
link bytes and where the wall time went are collected in the result. On a device with DRAM the
weights are uploaded there once (`resident_weights`) and multiplied from there; each step then
also counts the DRAM bytes its GEMMs read, and with ``device_argmax`` the device finds each
step's greedy token itself (`BlockLinear.argmax` on the LM head): the logits never cross the
link, and the check compares tokens instead of logits. The per-step figures and the printed
summary are in `generation_summary`.
"""

import concurrent.futures
import contextlib
import dataclasses
import time

import numpy as np

from systolica.protocol import Feature

from .accel_linear import DEFAULT_TERMS, BlockLinear, block_format, compare
from .driver import Driver
from .generation_summary import is_large_linear, step_figures
from .llama import FloatLinear, LlamaModel, context_length, head_tensor
from .sampling import Sampler
from .text_stream import TextStream, token_bytes
from .timed_link import TimedLink

__all__ = [
    "AcceleratorBackend",
    "GenerationResult",
    "Prompt",
    "argmax_device_problem",
    "check_device_argmax",
    "generate",
    "open_accelerator",
    "prepare_prompt",
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
                     show_progress=None, device_argmax=False):
    """Wrap ``link`` in a `TimedLink`, open a `Driver` on it (IDENTIFY) and a `BlockLinear`
    (``terms`` int8 terms per activation) without its per-call float reference (the per-step
    check compares with the float model).

    ``resident``: None (the default) uploads the weights to the device's DRAM when its
    IDENTIFY reports DRAM (`resident_weights.upload`, progress bars on stderr with
    ``show_progress``) and streams them otherwise; False always streams them; True requires
    DRAM (ValueError without). With ``device_argmax`` (`generate`'s), ValueError before the
    upload unless the device can find the greedy token (`argmax_device_problem`). ValueError if
    the model does not fit the DRAM, `resident_weights.ResidentWeightsCorrupt` if the DRAM does
    not keep them; the driver is closed then."""
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
        if device_argmax:
            problem = argmax_device_problem(driver.config, terms, resident)
            if problem:
                raise ValueError(f"the greedy token on the device (device argmax): {problem}")
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
    device_argmax: bool = False   # the device found each greedy token: no logits came back

    @property
    def cosines(self):
        """Per-step cosine of the last-position logits with the float model's (checked, and
        the logits came back: not with ``device_argmax``)."""
        return [s.cosine for s in self.steps if s.cosine is not None]

    @property
    def checked(self):
        """Whether each step was compared with the float model (its greedy token at least)."""
        return any(s.float_argmax is not None for s in self.steps)


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

    def argmax(self, x, tensor):
        started = time.perf_counter()
        try:
            return self.linear.argmax(x, tensor)
        finally:
            self.seconds += time.perf_counter() - started


def _check_tokens(tokens):
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
        raise ValueError(f"tokens must be a positive integer, not {tokens!r}")


def argmax_device_problem(config, terms, resident=None):
    """Why a device of ``config`` cannot find an LM head's greedy token with ``terms`` int8
    terms per activation and the weights ``resident`` as `open_accelerator` takes it (False:
    streamed), or None."""
    if resident is False:
        return "it needs the LM head resident in the device's DRAM, not streamed"
    if not config.dram_mib:
        return "it needs the weights resident in the device's DRAM; this device has none"
    if Feature.ARGMAX not in config.features:
        return (f"the device ({config.label()}) does not find the argmax (its IDENTIFY reports "
                "no Feature.ARGMAX)")
    if terms == 2 and Feature.PAIR_SUM not in config.features:
        return (f"with two activation terms the device must add them, and this one "
                f"({config.label()}) does not (no Feature.PAIR_SUM): use one term")
    return None


def check_device_argmax(model_file, linear, sampler):
    """ValueError unless ``linear`` can find the LM head's greedy token on the device
    (`BlockLinear.can_argmax`: the head resident, a device that reports
    `protocol.Feature.ARGMAX`) and ``sampler`` is greedy."""
    if sampler is not None and not sampler.greedy:
        raise ValueError(f"the device's argmax is the greedy token: it does not go with "
                         f"sampling ({sampler!r})")
    head = head_tensor(model_file)
    if not hasattr(linear, "can_argmax"):
        why = "the linears are not on a device"
    elif head not in linear.resident:
        why = "the LM head is not resident in the device's DRAM"
    elif not linear.can_argmax(head):
        why = ("the device does not report Feature.ARGMAX, or two activation terms that it "
               "does not add (Feature.PAIR_SUM)")
    else:
        return
    raise ValueError(f"the device cannot find the greedy token: {why}")


def generate(model_file, prompt, *, linear=None, tokens=16, sampler=None, check=False,
             driver=None, link=None, write=None, device_argmax=False):
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
    device_argmax : bool
        Greedy tokens found on the device: at every step the final hidden state of the last
        position goes to ``linear.argmax`` for the LM head (`BlockLinear.argmax`), whose
        column is the token; no logits come back, so the check compares each step's token
        with the float model's greedy token (no cosine). Needs a greedy ``sampler`` and a
        ``linear`` that can (`check_device_argmax`: ValueError before anything runs).

    Returns
    -------
    GenerationResult
    """
    _check_tokens(tokens)
    if device_argmax:
        check_device_argmax(model_file, linear, sampler)
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
        if device_argmax:       # the LM head's largest column, found on the device
            logits = None
            token = timed.argmax(model.final_hidden(feed, cache), model.head_tensor)[0]
        else:
            logits = model.forward(feed, cache)[-1]
            token = sampler(logits)
        wall = time.perf_counter() - t0
        check_seconds = cosine = float_argmax = None
        if check:
            ref_logits, check_seconds = ref_step.result()
            if logits is not None:
                cosine = compare(logits, ref_logits)[1]
            float_argmax = int(np.argmax(ref_logits))
        if hasattr(base, "settle"):       # deferred bit-exact checks of this step's GEMMs
            base.settle()

        step = step_figures("prefill" if not steps else "decode", len(feed), token, wall,
                            linear_seconds=timed.seconds - before_linear,
                            link_seconds=(link.total_seconds - before_link) if link else 0.0,
                            new_records=records[before_records:] if records is not None else [],
                            stats=stats, before=before_stats)
        step.argmax = int(token) if logits is None else int(np.argmax(logits))
        step.device_argmax = logits is None
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
    large = dict.fromkeys(r.weight for r in records or () if is_large_linear(r))
    return GenerationResult(
        prompt_ids=list(prompt.ids), ids=out, text=stream.text, stop_reason=stop_reason,
        steps=steps, divergence=divergence if check else None, all_exact=all_exact,
        backend=getattr(base, "name", type(base).__name__)
        + ("; the LM head's greedy token found on the device (argmax)" if device_argmax else ""),
        wall=time.perf_counter() - started, large_linears=tuple(large),
        device_argmax=device_argmax)


def _timed_forward(model, feed, cache):
    started = time.perf_counter()
    logits = model.forward(feed, cache)[-1]
    return logits, time.perf_counter() - started
