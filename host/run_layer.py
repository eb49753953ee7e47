"""`systolica run-layer`: one SmolLM2 decoder layer on the accelerator against the float model."""

import dataclasses
import time

import numpy as np

from .accel_linear import AcceleratorLinear, BlockLinear, compare
from .driver import Driver
from .link import LinkError
from .llama import LINEARS, LlamaModel
from .model_file import ModelFile
from .progress import Progress
from .tokenizer import gguf_tokenizer

__all__ = ["DEFAULT_PROMPT", "LINEAR_KINDS", "LayerReport", "run_layer"]

# How the linears run: the weights' own GGUF blocks (default), or int8 W8A8.
LINEAR_KINDS = {"native": BlockLinear, "w8a8": AcceleratorLinear}

DEFAULT_PROMPT = ("Systolic arrays keep every multiplier busy by passing operands from one "
                  "neighbour to the next on each clock tick.")


@dataclasses.dataclass
class DriverStatsDelta:
    """What one extra run streamed."""

    weight_bytes_out: int
    act_bytes_out: int
    bytes_in: int
    device_cycles: int


class LayerReport:
    """What one run measured; `print` writes it for a person, `ok` says whether it passed."""

    def __init__(self, **fields):
        self.__dict__.update(fields)

    @property
    def all_exact(self):
        return all(r.exact for r in self.records)

    def print(self, out=print):
        cfg = self.config
        out(f"model: {self.model_path.name}, layer {self.layer} of {self.n_layers}; prompt of "
            f"{self.tokens} tokens")
        out(f"device: {cfg.rows}x{cfg.cols} array, link {cfg.link_bytes} B/cycle "
            f"({self.link_name})")
        out(f"linears: {self.linear_name}")
        out(f"{'linear':<12} {'N x K x M':>16} {'max |err|':>10} {'cosine':>9} "
            f"{'cycles':>9} {'MAC util':>8} {'bytes out':>10} {'bit-exact':>9}")
        macs_per_cycle = cfg.rows * cfg.cols
        for r in self.records:
            util = r.n * r.k * r.m / (macs_per_cycle * r.device_cycles) if r.device_cycles else 0
            out(f"{r.weight:<12} {f'{r.n} x {r.k} x {r.m}':>16} {r.max_abs_error:>10.4g} "
                f"{r.cosine:>9.6f} {r.device_cycles:>9} {util:>8.1%} {r.bytes_out:>10} "
                f"{'yes' if r.exact else 'NO':>9}")
        out(f"{'layer output':<12} {'':>16} {self.max_abs_error:>10.4g} {self.cosine:>9.6f}")
        st = self.stats
        out(f"device cycles {st.device_cycles}, MAC utilization {st.utilization(cfg):.1%}; "
            f"bytes streamed: {st.weight_bytes_out} weights, {st.act_bytes_out} activations, "
            f"{st.bytes_in} results; wall {self.wall:.2f} s "
            f"(accelerator layer {self.accel_wall:.2f} s)")
        out(f"weight bytes per weight (GEMM frames: blocks, headers, padding / {self.weights} "
            f"weights): prompt {st.weight_bytes_out / self.weights:.4f}")
        if self.decode is not None:
            d = self.decode
            out(f"one-token decode step: weight bytes per weight "
                f"{d.weight_bytes_out / self.weights:.4f}; {d.act_bytes_out} activation bytes, "
                f"{d.bytes_in} result bytes, {d.device_cycles} device cycles")
        for line in recovery_lines(self.recovery, self.faults):
            out(line)
        model = ("the bit-exact block model (host/block_formats.py)" if self.kind == "native"
                 else "numpy's integer result")
        verdict = ("all {} device GEMMs bit-exact with " + model if self.all_exact
                   else "NOT all {} device GEMMs were bit-exact with " + model)
        out(verdict.format(st.device_gemms))


def recovery_lines(stats, faults):
    """The link's faults (a `FaultyLink`'s ``faults``, or None) and what the driver did about
    them (its `DriverStats`), as lines for a person."""
    lines = []
    if faults is not None:
        lines.append(f"faults injected: to the device {_faults_text(faults['to_device'])}; "
                     f"from the device {_faults_text(faults['from_device'])}")
    if faults is not None or stats.retries or stats.resyncs:
        lines.append(f"recovery: {stats.retries} retries, {stats.resyncs} resyncs, "
                     f"{stats.stale_replies} late replies dropped, {stats.discarded_in} "
                     "received bytes discarded")
    return lines


def _faults_text(faults):
    return ", ".join(f"{n} {kind}" for kind, n in faults.items() if n) or "none"


def run_layer(link, *, layer=0, prompt=DEFAULT_PROMPT, model_path=None, timeout=30.0,
              show_progress=None, linears="native", decode_step=True, retries=3,
              max_payload=None):
    """Run decoder ``layer`` of the model on ``prompt`` through the device on ``link`` and on the
    float path; returns a `LayerReport`.

    ``linears`` is "native" (GGUF blocks as in the file) or "w8a8". With ``decode_step`` the layer
    also runs once on a single token, to measure the bytes a one-token decode step streams.
    ``retries`` and ``max_payload`` go to the `Driver` (a noisy link).
    """
    if linears not in LINEAR_KINDS:
        raise ValueError(f"linears must be one of {', '.join(LINEAR_KINDS)}, not {linears!r}")
    started = time.monotonic()
    model_file = ModelFile(model_path)
    params = model_file.params
    if not isinstance(layer, int) or not 0 <= layer < params.n_layers:
        raise ValueError(f"layer must be an integer in [0, {params.n_layers}), not {layer!r}")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt must be a non-empty string")
    ids = gguf_tokenizer(model_file).encode(prompt).ids
    model = LlamaModel(model_file)

    x = model.embed(ids)
    for i in range(layer):          # the layers before run in float: they are not measured
        x = model.layer(x, i)
    reference = model.layer(x, layer)

    # Progress in bytes of weights streamed (activations and framing are small beside them).
    n_weights = sum(int(np.prod(model_file.tensor_shape(f"blk.{layer}.{w}.weight")))
                    for w in LINEARS)
    progress = Progress(f"layer {layer} on the device", n_weights, enabled=show_progress)
    driver = Driver(link, timeout=timeout, progress=progress.advance, retries=retries,
                    max_payload=max_payload)
    try:
        accel = LINEAR_KINDS[linears](driver, model_file)
        accel_started = time.monotonic()
        with progress:
            out = model.layer(x, layer, linear=accel)
        accel_wall = time.monotonic() - accel_started
        stats = dataclasses.replace(driver.stats)
        records = list(accel.records)
        decode = None
        if decode_step:
            model.layer(x[-1:], layer, linear=accel)
            after = driver.stats
            decode = DriverStatsDelta(
                weight_bytes_out=after.weight_bytes_out - stats.weight_bytes_out,
                act_bytes_out=after.act_bytes_out - stats.act_bytes_out,
                bytes_in=after.bytes_in - stats.bytes_in,
                device_cycles=after.device_cycles - stats.device_cycles)
    except LinkError as exc:            # say how far the recovery went before it gave up
        st = driver.stats
        exc.add_note(f"before it: {st.device_gemms} device GEMMs done, {st.bytes_out} bytes "
                     f"sent; " + "; ".join(recovery_lines(st, getattr(link, "faults", None))))
        raise
    finally:
        driver.close()
    max_err, cosine = compare(out, reference)
    return LayerReport(
        model_path=model_file.path, layer=layer, n_layers=params.n_layers, tokens=len(ids),
        config=driver.config, link_name=link.name, linear_name=accel.name, kind=linears,
        records=records, max_abs_error=max_err, cosine=cosine, stats=stats, decode=decode,
        weights=n_weights, recovery=dataclasses.replace(driver.stats),
        faults=getattr(link, "faults", None),
        wall=time.monotonic() - started, accel_wall=accel_wall, output=out, reference=reference)
