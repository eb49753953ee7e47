"""GGUF block formats (Q8_0, Q4_0, Q4_1), activations in 32-blocks, and the bit-exact model of
the device's block-scaled GEMM arithmetic.

The arithmetic (what the device's scale stage computes, written down once)
--------------------------------------------------------------------------
Weights W (M output channels × K) come as GGUF blocks of 32 along K: block ``b`` of channel ``m``
holds a binary16 scale ``dw[m, b]``, for Q4_1 also a binary16 offset ``mw[m, b]``, and 32 small
integers ``q[m, 32b + i]`` (Q8_0: int8; Q4_0: nibble - 8; Q4_1: nibble 0..15). The weight is
``dw·q`` (+ ``mw`` for Q4_1).

Activations X (N rows × K) are int8 in [-127, 127] in blocks of 32 along K, each block with a
binary16 scale ``dx[n, b]``: the activation is ``dx·x``.

For each output (n, m), with ⊗ and ⊕ binary32 multiply and add (round to nearest even, see
`systolica.fp32_model`) and f32() the exact conversion to binary32:

    acc = +0
    for b in 0 .. K/32 - 1:
        P = Σ_i x[n, 32b+i]·q[m, 32b+i]                    exact integer, |P| < 2**20
        t = f32(P) ⊗ (f32(dw[m, b]) ⊗ f32(dx[n, b]))       the inner product is exact
        acc = acc ⊕ t
        Q4_1 only:
        S = Σ_i x[n, 32b+i]                                exact integer, |S| ≤ 4064
        v = (f32(mw[m, b]) ⊗ f32(dx[n, b])) ⊗ f32(S)       the inner product is exact
        acc = acc ⊕ v
    C[n, m] = acc                                          sent as binary32 bits

Every conversion is exact and the two binary16 products are exact (11 + 11 significant bits),
so the roundings are those of t, v and the two sums. With finite binary16 scales no intermediate
can overflow or reach the flush-to-zero range: the products are at least 2**-48 in magnitude or
zero, and at most 65504² · 2**20 · K/32 < 2**70. A scale that is inf or NaN (binary16 exponent 31)
is rejected by the device with status BAD_SCALE.
"""

import dataclasses

import numpy as np

from systolica.fp32_model import f16_to_f32, f32_add, f32_mul, int_to_f32
from systolica.protocol import BLOCK, BLOCK_BYTES, Format

__all__ = [
    "BLOCK",
    "FORMATS",
    "BlockFormat",
    "block_gemm_native",
    "block_gemm_reference",
    "decode_blocks",
    "dequantize_activations",
    "quantize_activation_terms",
    "quantize_activations",
]



@dataclasses.dataclass(frozen=True)
class BlockFormat:
    """One GGUF block format as the device takes it."""

    name: str
    code: Format          # the protocol's format code
    ggml_type: int        # gguf.GGMLQuantizationType value
    block_bytes: int
    has_offset: bool      # Q4_1's m term

    @property
    def bytes_per_weight(self):
        return self.block_bytes / BLOCK


FORMATS = {f.name: f for f in [
    BlockFormat("q8_0", Format.Q8_0, 8, BLOCK_BYTES[Format.Q8_0], has_offset=False),
    BlockFormat("q4_0", Format.Q4_0, 2, BLOCK_BYTES[Format.Q4_0], has_offset=False),
    BlockFormat("q4_1", Format.Q4_1, 3, BLOCK_BYTES[Format.Q4_1], has_offset=True),
]}


def _format(fmt):
    if isinstance(fmt, BlockFormat):
        return fmt
    try:
        return FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown block format {fmt!r}; known: {', '.join(FORMATS)}") from None


def decode_blocks(raw, fmt):
    """Split GGUF block bytes into their fields.

    Parameters
    ----------
    raw : uint8 array (..., n_blocks * block_bytes)
        Rows of blocks exactly as in the file.
    fmt : str or BlockFormat

    Returns
    -------
    (d, m, q) : uint16 binary16 patterns (..., n_blocks), the same for Q4_1's offsets (None for
        the other formats), and int8 quants (..., n_blocks * 32) in K order.
    """
    fmt = _format(fmt)
    raw = np.asarray(raw)
    if raw.dtype != np.uint8:
        raise TypeError(f"raw block bytes must be uint8, not {raw.dtype}")
    if raw.shape[-1] % fmt.block_bytes:
        raise ValueError(f"{fmt.name} rows must be whole blocks of {fmt.block_bytes} bytes, "
                         f"not {raw.shape[-1]} bytes")
    lead = raw.shape[:-1]
    blocks = raw.reshape(*lead, -1, fmt.block_bytes)
    d = np.ascontiguousarray(blocks[..., 0:2]).view("<u2")[..., 0]
    m = None
    body = blocks[..., 2:]
    if fmt.has_offset:
        m = np.ascontiguousarray(blocks[..., 2:4]).view("<u2")[..., 0]
        body = blocks[..., 4:]
    if fmt.code == Format.Q8_0:
        q = body.view(np.int8)
    else:
        nib = np.concatenate([body & 0x0F, body >> 4], axis=-1).astype(np.int8)
        q = nib - 8 if fmt.code == Format.Q4_0 else nib
    return d, m, np.ascontiguousarray(q, dtype=np.int8).reshape(*lead, -1)


def quantize_activations(x):
    """float (N, K) → int8 in [-127, 127] and binary16 scales per 32-block: ``(q, d)`` with
    ``q`` (N, K) int8 and ``d`` (N, K/32) uint16 patterns, ``x ≈ d·q`` blockwise.

    The scale is amax/127 rounded to binary16 (at least the smallest binary16 subnormal when the
    block is not all zeros); the quants are x / scale rounded to nearest and clipped.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"activations must be 2-D (N, K), not shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"activations must be floating point, not {x.dtype}")
    n, k = x.shape
    if k % BLOCK:
        raise ValueError(f"K must be a multiple of {BLOCK} for block formats, not {k}")
    if not np.isfinite(x).all():
        raise ValueError("activations must be finite")
    blocks = x.astype(np.float64).reshape(n, k // BLOCK, BLOCK)
    amax = np.abs(blocks).max(axis=-1)
    if (amax / 127 >= 65520).any():     # would round to binary16 inf
        raise ValueError("activations too large for binary16 block scales (|x| > 8.3e6)")
    scale = (amax / 127).astype(np.float16)
    tiny = np.float16(2.0 ** -24)
    scale = np.where((amax > 0) & (scale == 0), tiny, scale).astype(np.float16)
    safe = np.where(scale == 0, 1, scale.astype(np.float64))
    q = np.clip(np.rint(blocks / safe[..., None]), -127, 127).astype(np.int8)
    return q.reshape(n, k), scale.view(np.uint16)


def dequantize_activations(q, d):
    """``d·q`` blockwise in float64: the activations that int8 ``q`` (N, K) with binary16 block
    scales ``d`` (N, K/32, uint16 patterns) stand for."""
    n, k = q.shape
    scale = np.asarray(d, dtype=np.uint16).view(np.float16).astype(np.float64)
    return (q.astype(np.float64).reshape(n, k // BLOCK, BLOCK) * scale[..., None]).reshape(n, k)


def quantize_activation_terms(x, terms):
    """``x`` (N, K) as ``terms`` int8 block-quantized rows each: ``(q, d)`` with ``q`` of shape
    (terms·N, K) and ``d`` (terms·N, K/32), the rows ``t·N .. t·N + N - 1`` holding term ``t``.

    Term 0 is `quantize_activations` of ``x``; each next term quantizes what the terms before it
    left over (at most half a step of its block, so each term adds about 7 bits). A linear layer
    then takes all the rows in one GEMM and sums each row's terms: ``y = Σ_t y[t·N:(t+1)·N]``.
    On a device with more array rows than a decode step's one token, the second term rides in a
    row that would idle: the weights stream once for both.
    """
    if not isinstance(terms, int) or isinstance(terms, bool) or not 1 <= terms <= 4:
        raise ValueError(f"terms must be an integer from 1 to 4, not {terms!r}")
    qs, ds = [], []
    rest = np.asarray(x, dtype=np.float64)
    for _ in range(terms):
        q, d = quantize_activations(rest)
        qs.append(q)
        ds.append(d)
        rest = rest - dequantize_activations(q, d)
    return np.concatenate(qs), np.concatenate(ds)


def _operands(xq, raw_weights, fmt):
    """What both block GEMM models start from: the format, the weights' fields, the int8
    activations and the number of 32-blocks along K (checked to match)."""
    fmt = _format(fmt)
    dw, mw, q = decode_blocks(raw_weights, fmt)
    xq = np.asarray(xq, dtype=np.int8)
    k = xq.shape[1]
    if q.shape[1] != k:
        raise ValueError(f"weights have K = {q.shape[1]}, activations K = {k}")
    return fmt, dw, mw, q, xq, k // BLOCK


def block_gemm_reference(xq, xd, raw_weights, fmt):
    """The device's result, bit for bit: binary32 patterns (N, M) as uint32.

    Parameters
    ----------
    xq, xd : the activations from `quantize_activations`: int8 (N, K), binary16 scales (N, K/32).
    raw_weights : uint8 (M, K/32 * block_bytes): the weight tensor's rows of GGUF blocks.
    fmt : str or BlockFormat
    """
    fmt, dw, mw, q, xq, nb = _operands(xq, raw_weights, fmt)
    n = xq.shape[0]
    xb = xq.astype(np.int64).reshape(n, nb, BLOCK)
    qb = q.astype(np.int64).reshape(-1, nb, BLOCK)
    dot = np.einsum("nbi,mbi->bnm", xb, qb)               # (nb, N, M) exact
    sums = xb.sum(axis=-1)                                  # (N, nb)
    dx = f16_to_f32(xd)                                     # (N, nb)
    dw32 = f16_to_f32(dw)                                   # (M, nb)
    acc = np.zeros((n, qb.shape[0]), dtype=np.uint32)
    for b in range(nb):
        t = f32_mul(int_to_f32(dot[b]), f32_mul(dw32[None, :, b], dx[:, None, b]))
        acc = f32_add(acc, t)
        if fmt.has_offset:
            u = f32_mul(f16_to_f32(mw)[None, :, b], dx[:, None, b])
            v = f32_mul(u, int_to_f32(sums[:, b])[:, None])
            acc = f32_add(acc, v)
    return acc


def block_gemm_native(xq, xd, raw_weights, fmt):
    """`block_gemm_reference`'s result, bit for bit, from numpy's own binary32 arithmetic.

    The same operations in the same order: the block dot products are integers below 2**20 (a
    float32 matrix product forms them exactly), and every ⊗ and ⊕ is one IEEE binary32 operation,
    rounded to nearest even as the device's are. That is the device's arithmetic as long as no
    result is subnormal or overflows, which the bounds in this module's docstring rule out for
    finite binary16 scales; numpy is told to raise if one ever did. Orders of magnitude faster
    than the bit-level model, for whole-model studies (`systolica.host.quality`); the tests
    check the two agree.
    """
    fmt, dw, mw, q, xq, nb = _operands(xq, raw_weights, fmt)
    n = xq.shape[0]
    xb = xq.astype(np.float32).reshape(n, nb, BLOCK).transpose(1, 0, 2)      # (nb, N, 32)
    qb = q.astype(np.float32).reshape(-1, nb, BLOCK).transpose(1, 2, 0)      # (nb, 32, M)
    dot = np.matmul(xb, qb)                                                  # (nb, N, M) exact
    dx = np.asarray(xd, dtype=np.uint16).view(np.float16).astype(np.float32)  # (N, nb)
    dw32 = dw.view(np.float16).astype(np.float32)                             # (M, nb)
    acc = np.zeros((n, qb.shape[2]), dtype=np.float32)
    with np.errstate(over="raise", under="raise", invalid="raise"):
        if fmt.has_offset:
            mw32 = mw.view(np.float16).astype(np.float32)
            sums = xb.sum(axis=-1)                                           # (nb, N) exact
        for b in range(nb):
            acc = acc + dot[b] * (dw32[None, :, b] * dx[:, None, b])
            if fmt.has_offset:
                acc = acc + (mw32[None, :, b] * dx[:, None, b]) * sums[b][:, None]
    return acc.view(np.uint32)
