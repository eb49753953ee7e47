# amaranth: UnusedElaboratable=no
"""The binary32 units in Amaranth's simulator, one operation per cycle, bit-exact against the numpy
model (`systolica.fp32_model`), and the model itself against plain numpy float32 arithmetic
and hand-worked values."""

import math

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.sim import Simulator

from systolica.fp32_model import FLUSH_BELOW, f16_to_f32, f32_add, f32_mul, int_to_f32
from systolica.rtl.fp32 import Fp16ToFp32, Fp32Add, Fp32Multiply, IntToFp32

MIN_NORMAL = 0x00800000
MAX_FINITE = 0x7F7FFFFF
INF = 0x7F800000
SIGN = 0x80000000
ONE = 0x3F800000


# -- Running a unit ------------------------------------------------------------------------------

def run_unit(dut, inputs, outputs=("result",), valid=None):
    """Feeds ``inputs`` (port name → sequence of ints) one per cycle, or only in the cycles where
    ``valid`` is true (garbage operands otherwise), and returns each output port's values for the
    valid operations, in order, as uint32 arrays. Checks each result arrives exactly
    ``dut.latency`` cycles after its operands."""
    n = len(next(iter(inputs.values())))
    valid = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    columns = {name: [int(v) for v in values] for name, values in inputs.items()}
    ports = {name: getattr(dut, name) for name in columns}
    out_ports = [getattr(dut, name) for name in outputs]
    arrivals, got = [], []

    async def testbench(ctx):
        for cycle in range(n + dut.latency):
            if cycle < n:
                for name, port in ports.items():
                    ctx.set(port, columns[name][cycle])
                ctx.set(dut.valid, int(valid[cycle]))
            else:
                ctx.set(dut.valid, 0)
            await ctx.tick()
            if ctx.get(dut.result_valid):
                arrivals.append(cycle)
                got.append([ctx.get(port) for port in out_ports])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert arrivals == [i + dut.latency - 1 for i in np.flatnonzero(valid)], "latency or valid"
    got = np.array(got, dtype=np.uint64).reshape(-1, len(outputs)).astype(np.uint32)
    return {name: got[:, i] for i, name in enumerate(outputs)}


def assert_bits_equal(got, want, operands, what="result"):
    """Bit patterns equal, or a message naming the first mismatching operands in hex."""
    got, want = np.asarray(got, dtype=np.uint32), np.asarray(want, dtype=np.uint32)
    assert got.shape == want.shape
    bad = np.flatnonzero(got != want)
    if bad.size:
        lines = [f"{bad.size} of {got.size} {what}s differ; first ones:"]
        for i in bad[:8]:
            ops = ", ".join(f"{name}={int(values[i]) & 0xFFFFFFFF:#010x}"
                            for name, values in operands.items())
            lines.append(f"  [{i}] {ops}: got {int(got[i]):#010x}, want {int(want[i]):#010x}")
        pytest.fail("\n".join(lines))


# -- Operands ------------------------------------------------------------------------------------

def pack(sign, exp, frac):
    sign, exp, frac = (np.asarray(x, dtype=np.int64) for x in (sign, exp, frac))
    assert np.all((exp >= 0) & (exp <= 254)), "operand exponent out of range"
    return ((sign << 31) | (exp << 23) | (frac & 0x7FFFFF)).astype(np.uint32)


def fields(bits):
    bits = np.asarray(bits, dtype=np.int64)
    return bits >> 31, (bits >> 23) & 0xFF, bits & 0x7FFFFF


def with_zeros(rng, bits, rate=0.03):
    """Some operands replaced by zeros of either sign."""
    zero = rng.random(bits.size) < rate
    return np.where(zero, (rng.integers(0, 2, bits.size) << 31).astype(np.uint32), bits)


def rand_sign(rng, n):
    return rng.integers(0, 2, n)


def rand_frac(rng, n):
    """Uniform fractions, with some all-ones-ish, some zero and some short (few leading bits,
    which makes ties in rounding common) mixed in."""
    frac = rng.integers(0, 1 << 23, n)
    kind = rng.integers(0, 6, n)
    top = rng.integers(0, 13, n)
    short = (frac >> (23 - top)) << (23 - top)
    frac = np.where(kind == 1, short, frac)
    frac = np.where(kind == 2, 0x7FFFFF - rng.integers(0, 16, n), frac)
    frac = np.where(kind == 3, rng.integers(0, 16, n), frac)
    return frac


def rand_f32(rng, n, exp_lo=1, exp_hi=254):
    return pack(rand_sign(rng, n), rng.integers(exp_lo, exp_hi + 1, n), rand_frac(rng, n))


def exponent_pairs(rng, n, exp_sum):
    """Biased exponents ``ea, eb`` in 1..254 with ``ea + eb - 127`` drawn from ``exp_sum``."""
    target = rng.choice(np.asarray(exp_sum), n)
    lo = np.maximum(1, target + 127 - 254)
    hi = np.minimum(254, target + 127 - 1)
    ea = lo + (rng.random(n) * (hi - lo + 1)).astype(np.int64)
    return ea, target + 127 - ea


def exponent_gaps(rng, n, gaps, big_lo=1):
    """Biased exponents ``ea, eb`` in 1..254 with ``|ea - eb|`` drawn from ``gaps``, either one
    the larger, the larger one at least ``big_lo``."""
    gap = rng.choice(np.asarray(gaps), n)
    big = np.clip(rng.integers(big_lo, 255, n), 1 + gap, 254)
    small = big - gap
    swap = rng.integers(0, 2, n).astype(bool)
    return np.where(swap, small, big), np.where(swap, big, small)


def close_to(rng, a):
    """For each ``a``, an operand whose exponent is 0..30 away and whose sign is random."""
    _, ea, _ = fields(a)
    gap = rng.integers(-30, 31, a.size)
    eb = np.clip(np.where(ea == 0, rng.integers(1, 255, a.size), ea + gap), 1, 254)
    return rand_sign(rng, a.size), eb, rand_frac(rng, a.size)


def f32(x):
    return int(np.float32(x).view(np.uint32))


# Hand-picked (a, b) pairs, with what each one is about.
MUL_EDGES = [
    (ONE, ONE),                                     # 1 · 1
    (f32(1.5), f32(-1.5)),                          # exact, sign
    (0x3F800001, 0x3F800001),                       # (1+u)² = 1 + 2u + u²: sticky only (u=2**-23)
    (0x3FFFFFFF, 0x3FFFFFFF),                       # (2-u)², product >= 2, normalize
    (0x3FFFFFFF, 0x3F800001),                       # (2-u)(1+u) = 2 + u - u²: below a tie, down
    (0x3F800001, 0x3FFFFFFE),                       # (1+u)(2-2u) = 2 - 2u²: carry into exponent
    (0x3FFFFFFF, 0x3F800000 | 0x400000),            # 1.1..1 · 1.5
    (0x3F800001, 0x3FC00000),                       # (1+u)·1.5 = 1.5 + 1.5u: tie, to even (up)
    (0x3F800003, 0x3FC00000),                       # (1+3u)·1.5 = 1.5 + 4.5u: tie, even (down)
    (0x3F800002, 0x3FC00000),                       # (1+2u)·1.5 = 1.5 + 3u: exact
    (0x3F800005, 0x3FC00000),                       # 1.5 + 7.5u: tie, to even (up)
    (0x3F800007, 0x3FC00000),                       # 1.5 + 10.5u: tie, to even (down)
    (0x3F800000, 0x00000000), (0x80000000, 0x3F800000), (0x80000000, 0x80000000),
    (0x00000000, 0x00000000), (0xC2280000, 0x00000000),             # zeros keep xor'd sign
    (MAX_FINITE, ONE), (MAX_FINITE, 0x3F800001),                    # max, overflow to inf
    (0x7F7FFFFE, 0x3F800001), (0xFF7FFFFE, 0x3F800001),             # rounding carries to ±inf
    (0x7F000000, 0x40000000), (0xFF000000, 0x40000000),             # 2**127 · 2 = inf, -inf
    (MAX_FINITE, MAX_FINITE), (MAX_FINITE, 0xFF7FFFFF),
    (0x5F800000, 0x5F7FFFFF), (0x5F800000, 0x5F800000),             # max; 2**64 · 2**64 = inf
    (MIN_NORMAL, ONE), (MIN_NORMAL, 0x3F7FFFFF),                    # min normal, below: flush
    (0x80800000, 0x3F7FFFFF), (0x00FFFFFF, 0x3F000000),             # -0 ; (2-u)·2**-127 flush
    (0x00FFFFFF, 0x3F000001),                       # (2-u)(1+u)·2**-127 >= 2**-126: not flushed
    (0x1F800000, 0x1F800000), (0x1F800000, 0x1F7FFFFF),             # 2**-64 · 2**-64, below
    (MIN_NORMAL, MIN_NORMAL), (0x80800000, MIN_NORMAL),             # far below: ±0
]

ADD_EDGES = [
    (ONE, ONE), (ONE, 0xBF800000), (0xBF800000, ONE),              # 1 + 1 ; x + -x = +0
    (0x00000000, 0x00000000), (0x80000000, 0x80000000),            # +0 + +0, -0 + -0
    (0x00000000, 0x80000000), (0x80000000, 0x00000000),            # +0 + -0 = +0 both ways
    (0x4049_0FDB, 0x80000000), (0x80000000, 0xC049_0FDB),          # x + 0 = x
    (0x12345678, 0x92345678), (MAX_FINITE, 0xFF7FFFFF),            # x + -x = +0
    (ONE, 0x33800000), (0x3F800001, 0x33800000),                   # 1 + u/2: tie, even down/up
    (ONE, 0x33800001), (ONE, 0xB3800000), (ONE, 0xB3000000),       # above tie; 1 - u/2, 1 - u/4
    (0x3FFFFFFF, 0x34000000), (0x3FFFFFFF, 0x33800000),            # 1.1..1 rounding into 2.0
    (0x3FFFFFFF, 0x34000001), (0xBFFFFFFF, 0xB4000000),
    (ONE, 0x0DA24260), (ONE, 0x8DA24260), (0x3F800001, 0x8DA24260),  # huge gap: 1, or neighbour
    (0x7F000000, 0x00800000), (0x00800000, 0x7F000000),            # gap 253
    (ONE, 0x32FFFFFF), (ONE, 0xB2FFFFFF), (ONE, 0x32800000),       # gap 26: sticky only
    (MAX_FINITE, 0x73000000), (MAX_FINITE, 0x72FFFFFF),            # max + half ulp: inf; below
    (MAX_FINITE, MAX_FINITE), (0xFF7FFFFF, 0xFF7FFFFF),            # ±inf
    (0x7F000000, 0x7F000000), (0x7F7FFFFE, 0x73800000),            # 2**128 = inf; max
    (0x00800001, 0x80800000), (0x80800001, 0x00800000),            # ±2**-149: flushed, sign
    (0x01000000, 0x80800001), (0x01000000, 0x80800000),            # just below 2**-126; equal
    (0x00FFFFFF, 0x80800000), (0x00800000, 0x00800000),            # below; 2·min normal
    (0x40000000, 0xBFFFFFFF), (0x3F800000, 0xBF7FFFFF),            # cancellation to one ulp
    (0x4B000001, 0xCB000000), (0x3FC00000, 0xBFA00000),
]

_HALF = 0x1FFFFFF   # a magnitude bit pattern below 2**25: the 24/25-bit rounding boundary


def int_edges(width):
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    cand = [0, 1, -1, 2, -2, 3, lo, hi, lo + 1, hi - 1,
            (1 << 24) - 1, 1 << 24, (1 << 24) + 1, (1 << 24) + 2, (1 << 24) + 3,   # ties
            -((1 << 24) + 1), -((1 << 24) + 3), (1 << 25) + 2, (1 << 25) + 6, (1 << 25) - 1,
            _HALF, -_HALF, (1 << 26) + 5, (1 << 30) + 64, (1 << 30) + 65, (1 << 30) + 192,
            0x7FFFFFC0, 0x7FFFFF80, -0x7FFFFFC0, 0x7FFFFFBF, 0x12345678, -0x12345678]
    cand += [s * ((1 << k) + d) for k in range(width) for d in (-1, 0, 1) for s in (1, -1)]
    return sorted({c for c in cand if lo <= c <= hi})


# -- The model ------------------------------------------------------------------------------------

def test_model_agrees_with_float32_arithmetic():
    """Wherever nothing is flushed and nothing overflows, the model (float64, then one rounding to
    float32) is plain float32 arithmetic; where something is, it gives signed zeros and infs."""
    rng = np.random.default_rng(1)
    n = 200_000
    a = with_zeros(rng, rand_f32(rng, n))
    b = np.concatenate([with_zeros(rng, rand_f32(rng, n // 2)), pack(*close_to(rng, a[n // 2:]))])
    fa, fb = a.view(np.float32), b.view(np.float32)
    with np.errstate(over="ignore"):
        cases = [(f32_mul, fa * fb, fa.astype(np.float64) * fb),
                 (f32_add, fa + fb, fa.astype(np.float64) + fb)]
    for model, plain, exact in cases:
        got = model(a, b)
        flushed = np.abs(exact) < FLUSH_BELOW
        overflow = ~np.isfinite(plain)
        normal = ~flushed & ~overflow
        assert flushed.sum() > 100 and overflow.sum() > 100 and normal.sum() > n // 4
        assert_bits_equal(got[normal], plain[normal].view(np.uint32),
                          {"a": a[normal], "b": b[normal]})
        assert_bits_equal(got[flushed], np.signbit(exact[flushed]).astype(np.uint32) << 31,
                          {"a": a[flushed], "b": b[flushed]}, "flushed result")
        assert_bits_equal(got[overflow], plain[overflow].view(np.uint32),
                          {"a": a[overflow], "b": b[overflow]}, "overflowed result")
    ints = rng.integers(-(1 << 31), 1 << 31, n)
    assert_bits_equal(int_to_f32(ints), ints.astype(np.int32).astype(np.float32).view(np.uint32),
                      {"x": ints})


def test_model_f16_against_decoding():
    """Every finite half against a decoding by hand (value = significand · 2**exponent)."""
    halves = [h for h in range(0x10000) if (h >> 10) & 0x1F != 31]
    want = []
    for h in halves:
        sign, exp, frac = h >> 15, (h >> 10) & 0x1F, h & 0x3FF
        mag = math.ldexp(frac, -24) if exp == 0 else math.ldexp(1024 + frac, exp - 25)
        want.append(f32(-mag if sign else mag))
    halves = np.array(halves)
    assert_bits_equal(f16_to_f32(halves), np.array(want, dtype=np.uint32), {"half": halves})


@pytest.mark.parametrize(("op", "a", "b", "want"), [
    (f32_mul, ONE, 0x3F800001, 0x3F800001),
    (f32_mul, 0x3F800001, 0x3FC00000, 0x3FC00002),      # tie, to even: up
    (f32_mul, 0x3F800007, 0x3FC00000, 0x3FC0000A),      # tie, to even: down
    (f32_mul, 0x3F800001, 0x3FFFFFFE, 0x40000000),      # 2 - 2u²: carry into the exponent
    (f32_mul, 0x7F7FFFFE, 0x3F800001, INF),             # carry into exponent 255
    (f32_mul, MAX_FINITE, 0x3F800001, INF),
    (f32_mul, 0xFF000000, 0x40000000, INF | SIGN),
    (f32_mul, 0x00FFFFFF, 0x3F000000, 0x00000000),      # exact < 2**-126: flushed, not rounded up
    (f32_mul, 0x80FFFFFF, 0x3F000000, SIGN),
    (f32_mul, 0x00FFFFFF, 0x3F000001, MIN_NORMAL),      # exact >= 2**-126: rounds to min normal
    (f32_mul, 0x80000000, 0x3F800000, SIGN),
    (f32_mul, MIN_NORMAL, ONE, MIN_NORMAL),             # exactly 2**-126: kept
    (f32_add, ONE, 0x33800000, ONE),                    # 1 + u/2: tie, to even: down
    (f32_add, 0x3F800001, 0x33800000, 0x3F800002),      # tie, to even: up
    (f32_add, ONE, 0xBF800000, 0x00000000),             # x + -x = +0
    (f32_add, SIGN, SIGN, SIGN), (f32_add, 0, SIGN, 0), (f32_add, SIGN, 0, 0),
    (f32_add, MAX_FINITE, 0x73000000, INF),             # max + half an ulp: tie, to even: inf
    (f32_add, MAX_FINITE, 0x72FFFFFF, MAX_FINITE),
    (f32_add, 0x00800001, 0x80800000, 0x00000000),      # 2**-149: flushed
    (f32_add, 0x80800001, 0x00800000, SIGN),
    (f32_add, 0x01000000, 0x80800000, MIN_NORMAL),      # 2**-125 - 2**-126: kept
    (f32_add, ONE, 0x0DA24260, ONE),
])
def test_model_hand_worked(op, a, b, want):
    got = int(op(np.uint32(a), np.uint32(b)))
    assert got == want, f"{op.__name__}({a:#010x}, {b:#010x}) = {got:#010x}, not {want:#010x}"


def test_model_int_and_f16_cases():
    assert int_to_f32(np.array([0, 1, -1, (1 << 24) + 1, (1 << 24) + 3, -(1 << 31)])).tolist() == [
        0, ONE, ONE | SIGN, 0x4B800000, 0x4B800002, 0xCF000000]
    assert f16_to_f32(np.array([0x0000, 0x8000, 0x3C00, 0x0001, 0x83FF, 0x7BFF])).tolist() == [
        0, SIGN, ONE, 0x33800000, 0xB87FC000, 0x477FE000]


# -- The units ------------------------------------------------------------------------------------

def mul_vectors(kind, rng, n):
    if kind == "uniform":
        return with_zeros(rng, rand_f32(rng, n)), with_zeros(rng, rand_f32(rng, n))
    if kind == "in_range":          # products comfortably normal
        return rand_f32(rng, n, 64, 190), rand_f32(rng, n, 64, 190)
    if kind == "ties":              # few significant bits: exact products, ties both ways
        ea, eb = exponent_pairs(rng, n, range(-10, 10))
        top_a = rng.integers(0, 16, n)           # mostly 23..26 significant bits in all
        top_b = np.clip(rng.integers(21, 26, n) - top_a, 0, 15)
        fa = (rng.integers(0, 1 << 23, n) >> (23 - top_a)) << (23 - top_a)
        fb = (rng.integers(0, 1 << 23, n) >> (23 - top_b)) << (23 - top_b)
        return pack(rand_sign(rng, n), ea, fa), pack(rand_sign(rng, n), eb, fb)
    if kind == "overflow":          # product exponent at and around the top
        ea, eb = exponent_pairs(rng, n, [252, 253, 254, 254, 255])
        return (pack(rand_sign(rng, n), ea, rand_frac(rng, n)),
                pack(rand_sign(rng, n), eb, rand_frac(rng, n)))
    if kind == "underflow":         # product exponent at and around the flush boundary
        ea, eb = exponent_pairs(rng, n, [-2, -1, -1, 0, 1, 2])
        return (pack(rand_sign(rng, n), ea, rand_frac(rng, n)),
                pack(rand_sign(rng, n), eb, rand_frac(rng, n)))
    if kind == "edges":
        a, b = zip(*MUL_EDGES, strict=True)
        a, b = np.array(a, dtype=np.uint32), np.array(b, dtype=np.uint32)
        return np.concatenate([a, b]), np.concatenate([b, a])
    raise ValueError(kind)


def add_vectors(kind, rng, n):
    if kind == "uniform":           # mostly huge exponent gaps
        return with_zeros(rng, rand_f32(rng, n)), with_zeros(rng, rand_f32(rng, n))
    if kind == "close":             # exponent gaps 0..30, either sign: alignment, cancellation
        ea, eb = exponent_gaps(rng, n, np.arange(31))
        return (with_zeros(rng, pack(rand_sign(rng, n), ea, rand_frac(rng, n)), 0.01),
                with_zeros(rng, pack(rand_sign(rng, n), eb, rand_frac(rng, n)), 0.01))
    if kind == "cancel":            # opposite signs, gaps 0..2, nearby fractions
        ea, eb = exponent_gaps(rng, n, [0, 0, 0, 1, 1, 2])
        fa = rng.integers(0, 1 << 23, n)
        fb = np.where(rng.random(n) < 0.5, fa ^ rng.integers(0, 1 << rng.integers(1, 24, n)),
                      rng.integers(0, 1 << 23, n)) & 0x7FFFFF
        sa = rand_sign(rng, n)
        return pack(sa, ea, fa), pack(1 - sa, eb, fb)
    if kind == "ties":              # few significant bits around the rounding position
        ea, eb = exponent_gaps(rng, n, np.arange(20, 29))
        top = rng.integers(0, 6, n)
        fb = (rng.integers(0, 1 << 23, n) >> (23 - top)) << (23 - top)
        return (pack(rand_sign(rng, n), ea, rand_frac(rng, n)),
                pack(rand_sign(rng, n), eb, fb))
    if kind == "far":               # gaps 24..253: the larger operand, or a neighbour
        ea, eb = exponent_gaps(rng, n, np.arange(24, 254))
        return (pack(rand_sign(rng, n), ea, rand_frac(rng, n)),
                pack(rand_sign(rng, n), eb, rand_frac(rng, n)))
    if kind == "overflow":          # large operands, mostly the same sign
        ea, eb = exponent_gaps(rng, n, [0, 0, 0, 1, 2, 23, 24, 25], big_lo=253)
        sa = rand_sign(rng, n)
        sb = np.where(rng.random(n) < 0.8, sa, 1 - sa)
        return pack(sa, ea, rand_frac(rng, n)), pack(sb, eb, rand_frac(rng, n))
    if kind == "underflow":         # small operands, mostly opposite signs: flushes
        ea, eb = rng.integers(1, 4, n), rng.integers(1, 4, n)
        sa = rand_sign(rng, n)
        sb = np.where(rng.random(n) < 0.8, 1 - sa, sa)
        return pack(sa, ea, rand_frac(rng, n)), pack(sb, eb, rand_frac(rng, n))
    if kind == "edges":
        a, b = zip(*ADD_EDGES, strict=True)
        a, b = np.array(a, dtype=np.uint32), np.array(b, dtype=np.uint32)
        return np.concatenate([a, b]), np.concatenate([b, a])
    raise ValueError(kind)


MUL_KINDS = {"uniform": 4000, "in_range": 4000, "ties": 4000, "overflow": 2000,
             "underflow": 2000, "edges": None}
ADD_KINDS = {"uniform": 3000, "close": 6000, "cancel": 4000, "ties": 4000, "far": 2000,
             "overflow": 1500, "underflow": 1500, "edges": None}


def test_vectors_reach_the_corners():
    """The vector sets do provoke what they are meant to: flushes, overflows, exact ties."""
    rng = np.random.default_rng(0)
    for vectors, model, kinds in ((mul_vectors, f32_mul, MUL_KINDS),
                                  (add_vectors, f32_add, ADD_KINDS)):
        a, b = (np.concatenate(x) for x in zip(*(vectors(k, rng, n or 0)
                                                  for k, n in kinds.items()), strict=True))
        fa, fb = a.view(np.float32).astype(np.float64), b.view(np.float32).astype(np.float64)
        exact = fa * fb if model is f32_mul else fa + fb
        got = model(a, b).view(np.float32).astype(np.float64)
        error = np.abs(got - exact)
        with np.errstate(over="ignore", invalid="ignore"):
            ulp = np.abs(np.spacing(got.astype(np.float32))).astype(np.float64)
        finite = np.isfinite(got) & (got != 0)
        ties = finite & (error == ulp / 2)
        assert ((np.abs(exact) < FLUSH_BELOW) & (exact != 0)).sum() > 200
        assert (~np.isfinite(got)).sum() > 150
        assert ties.sum() > 100
        # Ties went both ways: to an even result above and below the exact value.
        assert (ties & (got > exact)).any() and (ties & (got < exact)).any()


def _check_binary(dut, vectors, model, kind, n, seed, bubbles=False):
    rng = np.random.default_rng(seed)
    a, b = vectors(kind, rng, n)
    valid = rng.random(a.size) > 0.3 if bubbles else None
    got = run_unit(dut, {"a": a, "b": b}, valid=valid)["result"]
    if valid is not None:
        a, b = a[valid], b[valid]
    assert_bits_equal(got, model(a, b), {"a": a, "b": b})


@pytest.mark.parametrize(("kind", "n"), MUL_KINDS.items())
def test_multiply(kind, n):
    _check_binary(Fp32Multiply(), mul_vectors, f32_mul, kind, n, seed=list(MUL_KINDS).index(kind))


# The scale stage's narrow multipliers (binary16 × binary16, and products of those with
# integers), with partial products inferred or built from logic.
NARROW = [(11, 11, "infer"), (11, 11, "lut"), (20, 22, "lut"), (22, 12, "lut"), (22, 12, "infer"),
          (24, 24, "lut")]


@pytest.mark.parametrize(("a_bits", "b_bits", "multiplier"), NARROW)
@pytest.mark.parametrize("kind", ["uniform", "ties", "underflow", "overflow"])
def test_multiply_narrow(a_bits, b_bits, multiplier, kind):
    """Operands whose low significand bits are zero, as the caller promises."""
    rng = np.random.default_rng(a_bits * 100 + b_bits)
    a, b = mul_vectors(kind, rng, 600)
    a = a & np.uint32(~((1 << (24 - a_bits)) - 1) & 0xFFFFFFFF)
    b = b & np.uint32(~((1 << (24 - b_bits)) - 1) & 0xFFFFFFFF)
    dut = Fp32Multiply(a_bits=a_bits, b_bits=b_bits, multiplier=multiplier)
    got = run_unit(dut, {"a": a, "b": b})["result"]
    assert_bits_equal(got, f32_mul(a, b), {"a": a, "b": b})


@pytest.mark.parametrize(("args", "message"), [
    ({"a_bits": 0}, "a_bits must be an integer in 1..24"),
    ({"b_bits": 25}, "b_bits must be an integer in 1..24"),
    ({"multiplier": "dsp"}, "multiplier must be 'infer' or 'lut'"),
])
def test_multiply_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        Fp32Multiply(**args)


@pytest.mark.parametrize(("kind", "n"), ADD_KINDS.items())
def test_add(kind, n):
    _check_binary(Fp32Add(), add_vectors, f32_add, kind, n, seed=list(ADD_KINDS).index(kind))


def test_fp16_to_fp32_every_half():
    halves = np.arange(0x10000, dtype=np.uint32)
    dut = Fp16ToFp32()
    got = run_unit(dut, {"half": halves}, outputs=("result", "special"))
    special = ((halves >> 10) & 0x1F) == 0x1F
    assert_bits_equal(got["special"], special, {"half": halves}, "special flag")
    assert_bits_equal(got["result"][~special], f16_to_f32(halves[~special]),
                      {"half": halves[~special]})


@pytest.mark.parametrize("width", [1, 2, 8, 16, 24, 25, 26, 27, 31, 32])
def test_int_to_fp32(width):
    rng = np.random.default_rng(width)
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    n = 800
    uniform = rng.integers(lo, hi, n)
    bits = rng.integers(0, width, n)               # magnitudes of every length
    scaled = np.clip(rng.integers(0, 1 << 62, n) >> (62 - bits), 0, hi - 1)
    scaled = np.where(rng.random(n) < 0.5, -scaled, scaled)
    values = np.concatenate([int_edges(width), uniform, scaled]).astype(np.int64)
    dut = IntToFp32(width)
    got = run_unit(dut, {"value": values})["result"]
    assert_bits_equal(got, int_to_f32(values), {"value": values})


@pytest.mark.parametrize("unit", ["fp16", "int", "mul", "add"])
def test_bubbles(unit):
    """Operands with gaps between them: results come out for the valid ones only."""
    if unit == "mul":
        _check_binary(Fp32Multiply(), mul_vectors, f32_mul, "uniform", 300, 7, bubbles=True)
    elif unit == "add":
        _check_binary(Fp32Add(), add_vectors, f32_add, "close", 300, 7, bubbles=True)
    else:
        rng = np.random.default_rng(7)
        valid = rng.random(300) > 0.3
        if unit == "int":
            values = rng.integers(-(1 << 31), 1 << 31, 300)
            got = run_unit(IntToFp32(32), {"value": values}, valid=valid)["result"]
            want = int_to_f32(values[valid])
        else:
            values = rng.integers(0, 0x7C00, 300) | (rng.integers(0, 2, 300) << 15)
            got = run_unit(Fp16ToFp32(), {"half": values}, valid=valid)["result"]
            want = f16_to_f32(values[valid])
        assert_bits_equal(got, want, {"value": values[valid]})


def test_latencies_and_rtlil():
    units = [Fp16ToFp32(), IntToFp32(16), IntToFp32(32), Fp32Multiply(), Fp32Add()]
    assert [u.latency for u in units] == [1, 3, 3, 5, 5]
    assert Fp32Multiply(a_bits=11, b_bits=11, multiplier="lut").latency == 6
    for unit in units:
        assert "module" in rtlil.convert(unit)
