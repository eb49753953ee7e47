"""W8A8 quantization: int8 weights per output channel, int8 activations per token (both
symmetric); the integer GEMM runs on the device, the scales are applied in float on the host."""

import numpy as np

__all__ = ["quantize_activations", "quantize_weights"]


def _symmetric(x, axis):
    amax = np.max(np.abs(x), axis=axis, keepdims=True)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(x / scale), -127, 127).astype(np.int8)
    return q, scale


def quantize_weights(w):
    """(out, in) float → int8 (out, in) and float32 scales (out, 1)."""
    return _symmetric(np.asarray(w, dtype=np.float32), axis=1)


def quantize_activations(x):
    """(tokens, in) float → int8 (tokens, in) and float32 scales (tokens, 1)."""
    return _symmetric(np.asarray(x, dtype=np.float32), axis=1)
