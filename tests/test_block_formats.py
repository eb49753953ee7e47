"""GGUF block formats and the bit-exact model of the block-scaled GEMM (host/block_formats.py),
checked against gguf.quants and against an independent scalar implementation."""

import numpy as np
import pytest
from block_data import random_blocks, random_halves
from gguf import GGMLQuantizationType, quants

from systolica.host.block_formats import (
    BLOCK,
    FORMATS,
    block_gemm_native,
    block_gemm_reference,
    decode_blocks,
    dequantize_activations,
    quantize_activation_terms,
    quantize_activations,
)

FORMAT_NAMES = list(FORMATS)


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_decode_matches_gguf_dequantize(name):
    fmt = FORMATS[name]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 4 * BLOCK)).astype(np.float32)
    raw = quants.quantize(x, GGMLQuantizationType(fmt.ggml_type))
    d, m, q = decode_blocks(raw, fmt)
    assert q.shape == x.shape and q.dtype == np.int8
    expect = quants.dequantize(raw, GGMLQuantizationType(fmt.ggml_type))
    value = np.repeat(d.view(np.float16).astype(np.float32), BLOCK, axis=1) * q
    if fmt.has_offset:
        value += np.repeat(m.view(np.float16).astype(np.float32), BLOCK, axis=1)
    np.testing.assert_array_equal(value, expect)


@pytest.mark.parametrize(("name", "lo", "hi"), [("q8_0", -128, 127), ("q4_0", -8, 7),
                                                 ("q4_1", 0, 15)])
def test_decode_quant_ranges(name, lo, hi):
    rng = np.random.default_rng(2)
    _, _, q = decode_blocks(random_blocks(FORMATS[name], 50, 8, rng), name)
    assert q.min() == lo and q.max() == hi


def test_decode_rejects_bad_input():
    with pytest.raises(ValueError, match="whole blocks of 20 bytes"):
        decode_blocks(np.zeros((2, 30), np.uint8), "q4_1")
    with pytest.raises(TypeError, match="uint8"):
        decode_blocks(np.zeros((2, 20), np.int16), "q4_1")
    with pytest.raises(ValueError, match="unknown block format 'q5_k'"):
        decode_blocks(np.zeros((2, 20), np.uint8), "q5_k")


def test_quantize_activations_round_trip():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 3 * BLOCK)) * np.array([1e-6, 1e-3, 1.0, 50.0, 3e4])[:, None]
    x[0, :BLOCK] = 0.0
    q, d = quantize_activations(x)
    assert q.dtype == np.int8 and d.dtype == np.uint16 and d.shape == (5, 3)
    assert np.abs(q.astype(int)).max() <= 127
    scale = np.repeat(d.view(np.float16).astype(np.float64), BLOCK, axis=1)
    assert (q[0, :BLOCK] == 0).all() and (scale[0, :BLOCK] == 0).all()
    # Half a quantization step of error, or the clip at ±127 (binary16 rounding of the scale).
    err = np.abs(scale * q - x)
    assert (err <= 0.5 * scale + np.abs(x) * 2.0 ** -10 + 1e-12).all()


def test_activation_terms_stack_the_remainders():
    rng = np.random.default_rng(4)
    # (Magnitudes whose remainders still get normal binary16 scales: below about 0.1 the
    # remainder's scale is subnormal and coarser, so the gain is smaller.)
    x = rng.standard_normal((4, 4 * BLOCK)) * np.array([0.5, 1.0, 50.0, 3e4])[:, None]
    q1, d1 = quantize_activations(x)
    q, d = quantize_activation_terms(x, 2)
    assert q.shape == (8, 4 * BLOCK) and d.shape == (8, 4)
    np.testing.assert_array_equal(q[:4], q1)       # term 0 is the one-term quantization
    np.testing.assert_array_equal(d[:4], d1)
    one = np.abs(dequantize_activations(q1, d1) - x).max(axis=1)
    two = np.abs(dequantize_activations(q[:4], d[:4]) + dequantize_activations(q[4:], d[4:])
                 - x).max(axis=1)
    # The remainder is at most half a step (plus the scale's binary16 rounding): its own int8
    # quantization shrinks the error about 254-fold.
    assert (two <= one / 100).all(), (one, two)
    q3, d3 = quantize_activation_terms(x, 3)
    three = np.abs(sum(dequantize_activations(q3[4 * t:4 * t + 4], d3[4 * t:4 * t + 4])
                       for t in range(3)) - x).max(axis=1)
    assert (three < two).all(), (two, three)     # (the third's scales are often subnormal)


@pytest.mark.parametrize("terms", [0, 5, 1.5, True])
def test_activation_terms_rejects_bad_counts(terms):
    with pytest.raises(ValueError, match="terms must be an integer from 1 to 4"):
        quantize_activation_terms(np.zeros((1, BLOCK)), terms)


@pytest.mark.parametrize(("x", "error", "match"), [
    (np.zeros((2, 33)), ValueError, "multiple of 32"),
    (np.zeros((2, 32), np.int8), TypeError, "floating point"),
    (np.full((1, 32), np.nan), ValueError, "finite"),
    (np.full((1, 32), 1e9), ValueError, "too large"),
    (np.zeros(32), ValueError, "2-D"),
])
def test_quantize_activations_rejects(x, error, match):
    with pytest.raises(error, match=match):
        quantize_activations(x)


def scalar_reference(xq, xd, raw, fmt):
    """The documented arithmetic one output at a time with numpy float32 scalars (an
    implementation independent of fp32_model's vectorized one)."""
    dw, mw, q = decode_blocks(raw, fmt)
    n, k = xq.shape
    out = np.zeros((n, q.shape[0]), dtype=np.float32)
    f16 = np.uint16

    def half(bits):
        return np.float32(f16(bits).view(np.float16))

    with np.errstate(over="raise", under="raise"):
        for i in range(n):
            for j in range(q.shape[0]):
                acc = np.float32(0.0)
                for b in range(k // BLOCK):
                    sl = slice(b * BLOCK, (b + 1) * BLOCK)
                    p = int(np.dot(xq[i, sl].astype(np.int64), q[j, sl].astype(np.int64)))
                    acc = acc + np.float32(p) * (half(dw[j, b]) * half(xd[i, b]))
                    if fmt.has_offset:
                        s = int(xq[i, sl].astype(np.int64).sum())
                        acc = acc + (half(mw[j, b]) * half(xd[i, b])) * np.float32(s)
                out[i, j] = acc
    return out.view(np.uint32)


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_block_gemm_reference_matches_scalar_arithmetic(name):
    fmt = FORMATS[name]
    rng = np.random.default_rng(4)
    raw = random_blocks(fmt, 5, 3, rng)
    xq = rng.integers(-127, 128, size=(4, 3 * BLOCK)).astype(np.int8)
    xd = random_halves(rng, (4, 3))
    got = block_gemm_reference(xq, xd, raw, fmt)
    np.testing.assert_array_equal(got, scalar_reference(xq, xd, raw, fmt))


@pytest.mark.parametrize("special", [0.0, 0.2, 0.6])
@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_native_binary32_model_equals_the_bit_level_one(name, special):
    """numpy's own binary32 arithmetic gives the bit-level model's results exactly, including
    binary16 zeros, subnormals and the largest finite scales (`block_gemm_native`)."""
    fmt = FORMATS[name]
    rng = np.random.default_rng(int(special * 10) + len(name))
    raw = random_blocks(fmt, 40, 6, rng, special=special)
    xq = rng.integers(-127, 128, size=(7, 6 * BLOCK)).astype(np.int8)
    xq[0] = 127
    xq[1] = -127
    xd = random_halves(rng, (7, 6), special)
    np.testing.assert_array_equal(block_gemm_native(xq, xd, raw, fmt),
                                  block_gemm_reference(xq, xd, raw, fmt))


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_block_gemm_reference_is_close_to_float(name):
    """Weights exact, activations quantized in 32-blocks: close to the float product."""
    fmt = FORMATS[name]
    rng = np.random.default_rng(5)
    w = rng.standard_normal((48, 8 * BLOCK)).astype(np.float32)
    raw = quants.quantize(w, GGMLQuantizationType(fmt.ggml_type))
    wf = quants.dequantize(raw, GGMLQuantizationType(fmt.ggml_type))
    x = rng.standard_normal((7, 8 * BLOCK))
    xq, xd = quantize_activations(x)
    got = block_gemm_reference(xq, xd, raw, fmt).view(np.float32)
    expect = x @ wf.T.astype(np.float64)
    cos = (got * expect).sum() / np.linalg.norm(got) / np.linalg.norm(expect)
    assert cos > 0.9999, cos


def test_real_layer0_weights_through_the_model(model_file):
    """All seven SmolLM2 layer-0 linear weights, straight from the Q4_1 file: the bit-exact model
    against gguf.quants dequantization and a float matmul."""
    rng = np.random.default_rng(6)
    for name in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
        tensor = f"blk.0.{name}.weight"
        raw = model_file.raw(tensor)
        fmt = next(f for f in FORMATS.values() if f.ggml_type == model_file.quant_type(tensor))
        w = model_file.dequantized(tensor)
        x = rng.standard_normal((3, w.shape[1]))
        xq, xd = quantize_activations(x)
        got = block_gemm_reference(xq, xd, raw, fmt).view(np.float32).astype(np.float64)
        expect = x @ w.T.astype(np.float64)
        cos = (got * expect).sum() / np.linalg.norm(got) / np.linalg.norm(expect)
        assert cos > 0.9999, (tensor, fmt.name, cos)
