"""Linear layers on the accelerator.

* `BlockLinear` (the default): the weights' GGUF blocks go to the device exactly as they sit in
  the file; activations are quantized in 32-blocks; the device applies every scale and returns
  binary32. Each call is checked bit for bit against `block_formats.block_gemm_reference`.
* `AcceleratorLinear` (W8A8): int8 weights per channel, int8 activations per token; the device
  does the integer GEMM, the host the scales. Each call's int32 sums are checked against numpy.

Both compare the float result with the float reference (gguf.quants dequantization) on the same
input.
"""

import dataclasses
import time

import numpy as np

from . import block_formats
from .quant import quantize_activations, quantize_weights

__all__ = ["AcceleratorLinear", "BlockLinear", "LinearRecord", "compare"]


def compare(got, want):
    """(max abs error, cosine similarity) of two arrays."""
    got = np.asarray(got, dtype=np.float64).ravel()
    want = np.asarray(want, dtype=np.float64).ravel()
    denom = np.linalg.norm(got) * np.linalg.norm(want)
    cosine = float(got @ want / denom) if denom else float(np.array_equal(got, want))
    return float(np.max(np.abs(got - want))), cosine


@dataclasses.dataclass
class LinearRecord:
    layer: int
    weight: str
    n: int
    k: int
    m: int
    exact: bool
    max_abs_error: float
    cosine: float
    device_cycles: int
    bytes_out: int
    bytes_in: int
    wall: float


def _record(layer, weight, x_shape, m, exact, max_err, cosine, stats, before, wall):
    """A `LinearRecord`; ``before`` holds (device cycles, bytes out, bytes in) at the start."""
    return LinearRecord(
        layer=layer, weight=weight, n=x_shape[0], k=x_shape[1], m=m, exact=exact,
        max_abs_error=max_err, cosine=cosine, device_cycles=stats.device_cycles - before[0],
        bytes_out=stats.bytes_out - before[1], bytes_in=stats.bytes_in - before[2], wall=wall)


class AcceleratorLinear:
    """``linear(x, layer, weight_name)`` computed on the device behind ``driver``.

    Parameters
    ----------
    driver : Driver
    model_file : ModelFile
        Source of the weights (dequantized from the GGUF, then quantized to int8 per channel).
    """

    name = "accelerator (W8A8: int8 weights per channel, int8 activations per token)"

    def __init__(self, driver, model_file):
        self.driver = driver
        self.model_file = model_file
        self.records = []
        self._weights = {}

    def _quantized(self, name):
        if name not in self._weights:
            wq, scale = quantize_weights(self.model_file.dequantized(name))
            self._weights[name] = (np.ascontiguousarray(wq.T), scale.T)   # (in, out), (1, out)
        return self._weights[name]

    def __call__(self, x, layer, weight):
        name = f"blk.{layer}.{weight}.weight"
        w_t, w_scale = self._quantized(name)
        xq, x_scale = quantize_activations(x)
        stats = self.driver.stats
        before = (stats.device_cycles, stats.bytes_out, stats.bytes_in)
        started = time.monotonic()
        acc = self.driver.gemm(xq, w_t)
        wall = time.monotonic() - started
        exact = np.array_equal(acc, xq.astype(np.int64) @ w_t.astype(np.int64))
        y = acc.astype(np.float32) * x_scale * w_scale
        reference = x @ self.model_file.dequantized(name).T
        max_err, cosine = compare(y, reference)
        self.records.append(_record(layer, weight, xq.shape, w_t.shape[1], exact, max_err,
                                    cosine, stats, before, wall))
        return y


class BlockLinear:
    """``linear(x, layer, weight_name)`` on the device's block datapath, weights straight from
    the GGUF file (memory-mapped; never re-quantized)."""

    name = ("accelerator (native GGUF blocks: weights as in the file, activations int8 in "
            "32-blocks, scales applied on the device in binary32)")

    def __init__(self, driver, model_file):
        self.driver = driver
        self.model_file = model_file
        self.records = []
        self.weights = 0          # weights streamed (for bytes per weight)

    def format_of(self, name):
        qtype = self.model_file.quant_type(name)
        for fmt in block_formats.FORMATS.values():
            if fmt.ggml_type == qtype:
                return fmt
        raise ValueError(f"{name} is stored as GGML type {qtype}, which the device's block "
                         f"datapath does not take (it takes {', '.join(block_formats.FORMATS)})")

    def __call__(self, x, layer, weight):
        name = f"blk.{layer}.{weight}.weight"
        fmt = self.format_of(name)
        raw = self.model_file.raw(name)
        xq, xd = block_formats.quantize_activations(x)
        stats = self.driver.stats
        before = (stats.device_cycles, stats.bytes_out, stats.bytes_in)
        started = time.monotonic()
        y = self.driver.gemm_blocks(xq, xd, raw, fmt)
        wall = time.monotonic() - started
        exact = np.array_equal(y.view(np.uint32),
                               block_formats.block_gemm_reference(xq, xd, raw, fmt))
        reference = x @ self.model_file.dequantized(name).T
        max_err, cosine = compare(y, reference)
        self.weights += raw.shape[0] * xq.shape[1]
        self.records.append(_record(layer, weight, xq.shape, raw.shape[0], exact, max_err,
                                    cosine, stats, before, wall))
        return y
