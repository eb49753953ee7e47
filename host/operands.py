"""Checks of what the host is asked to multiply, before anything goes to the device: each bad
operand is named in a ValueError."""

import numpy as np

from .block_formats import BLOCK, FORMATS, BlockFormat

__all__ = ["check_block_activations", "check_block_format", "check_block_operands",
           "check_block_weights", "check_int8"]


def check_int8(name, x, ndim=2):
    """``x`` must be a non-empty ``ndim``-D numpy array of integers in int8's range."""
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, not {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, not shape {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{name} must have an integer dtype (int8 values), not {x.dtype}")
    if x.size and (x.min() < -128 or x.max() > 127):
        raise ValueError(f"{name} has values outside int8 [-128, 127]: "
                         f"min {x.min()}, max {x.max()}")
    if 0 in x.shape:
        raise ValueError(f"{name} must not be empty, shape {x.shape}")


def check_block_format(fmt, cfg):
    """``fmt`` (a name or a `BlockFormat`) as a `BlockFormat` the device of `Config` ``cfg``
    carries."""
    if not isinstance(fmt, BlockFormat):
        if fmt not in FORMATS:
            raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, not {fmt!r}")
        fmt = FORMATS[fmt]
    if fmt.name not in cfg.formats:
        raise ValueError(f"the device does not carry {fmt.name} (it carries "
                         f"{', '.join(cfg.formats)})")
    return fmt


def check_block_activations(xq, xd):
    """Check block activations: int8 ``xq`` (N, K), K a multiple of 32, and their binary16
    block scales ``xd`` (N, K/32)."""
    check_int8("xq", xq)
    if not isinstance(xd, np.ndarray) or xd.dtype != np.uint16:
        raise ValueError(f"xd must be a uint16 array of binary16 scales, not "
                         f"{getattr(xd, 'dtype', type(xd).__name__)}")
    n, k = xq.shape
    if k % BLOCK:
        raise ValueError(f"xq's K = {k} is not a multiple of {BLOCK}")
    if xd.shape != (n, k // BLOCK):
        raise ValueError(f"xd must have shape {(n, k // BLOCK)} for xq {xq.shape}, not "
                         f"{xd.shape}")


def check_block_weights(raw, fmt, cfg, k=None):
    """Check a block weight tensor ``raw`` (M, K/32 * block_bytes) of ``fmt`` for a device of
    ``cfg`` (K, if not given, from its row width); returns (``fmt`` as a `BlockFormat`, K)."""
    fmt = check_block_format(fmt, cfg)
    if not isinstance(raw, np.ndarray) or raw.dtype != np.uint8 or raw.ndim != 2:
        raise ValueError("raw must be a 2-D uint8 array of GGUF blocks, not "
                         f"{getattr(raw, 'dtype', type(raw).__name__)} "
                         f"{getattr(raw, 'shape', '')}")
    if 0 in raw.shape:
        raise ValueError(f"raw must not be empty, shape {raw.shape}")
    if k is None:
        if raw.shape[1] % fmt.block_bytes:
            raise ValueError(f"raw rows are {raw.shape[1]} bytes, not whole {fmt.name} blocks "
                             f"of {fmt.block_bytes} bytes")
        k = raw.shape[1] // fmt.block_bytes * BLOCK
    if raw.shape[1] != k // BLOCK * fmt.block_bytes:
        raise ValueError(f"raw rows are {raw.shape[1]} bytes; {fmt.name} blocks for K = {k} "
                         f"take {k // BLOCK * fmt.block_bytes}")
    if k > cfg.max_k:
        raise ValueError(f"K = {k} exceeds the device's max_k = {cfg.max_k} (block formats "
                         "are not split along K)")
    return fmt, k


def check_block_operands(xq, xd, raw, fmt, cfg):
    """Check a block GEMM's operands (see `Driver.gemm_blocks`) against the device's `Config`;
    returns ``fmt`` as a `BlockFormat`."""
    fmt = check_block_format(fmt, cfg)
    check_block_activations(xq, xd)
    return check_block_weights(raw, fmt, cfg, xq.shape[1])[0]
