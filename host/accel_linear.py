"""Linear layers on the accelerator, W8A8: the device does the integer GEMM, the host the scales.

Every call is checked: the device's int32 sums must equal numpy's int64 product of the same int8
operands, and the float result is compared with the float reference on the same input.
"""

import dataclasses
import time

import numpy as np

from .quant import quantize_activations, quantize_weights

__all__ = ["AcceleratorLinear", "LinearRecord", "compare"]


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
        self.records.append(LinearRecord(
            layer=layer, weight=weight, n=xq.shape[0], k=xq.shape[1], m=w_t.shape[1],
            exact=exact, max_abs_error=max_err, cosine=cosine,
            device_cycles=stats.device_cycles - before[0], bytes_out=stats.bytes_out - before[1],
            bytes_in=stats.bytes_in - before[2], wall=wall))
        return y
