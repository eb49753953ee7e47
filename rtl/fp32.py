"""Pipelined IEEE 754 binary32 arithmetic: binary16 and integer conversion, multiply, add.

Every unit is a fixed-latency pipeline that takes one operation per cycle and never stalls: the
operands are sampled on each clock edge, and ``result`` shows the answer exactly `latency` cycles
later, when ``result_valid`` repeats the ``valid`` that came with the operands (``valid`` only
travels alongside; the datapath runs, on garbage, in invalid cycles too). ``latency`` is a
Python attribute of each instance.

Arithmetic (defined bit-exactly by `systolica.fp32_model`):

* Operands are finite binary32 values that are normal or ±0 — never subnormal, infinite or NaN
  (the device guarantees this; outside that domain results are unspecified).
* Results are rounded to nearest, ties to even; a rounded magnitude beyond the largest finite
  binary32 becomes ±inf, as in IEEE 754.
* **Flush to zero:** a result whose exact, unrounded magnitude is below ``2**-126`` is a zero with
  the sign IEEE would give it (also when it would have rounded up to ``2**-126``). An exact zero
  sum is +0 unless both addends are -0.

Pipeline stages are kept short for 100 MHz on an ECP5 (-6) with margin: the 24×24 multiply is
four 12×12 partial products (one DSP each) between registers, summed in the next stage; the
adder's alignment finds its sticky bit beside the shifter, not after it; a leading-zero count
shares its stage with only the coarse part (multiples of 4) of the normalizing shift, the last
0..3 places going to the rounding stage. Rounding is a 31-bit increment of the packed exponent
and fraction, whose carry also takes a significand overflow into the exponent and exponent 254
into infinity.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Fp16ToFp32", "Fp32Add", "Fp32Multiply", "IntToFp32"]

_EXP_INF = 0xFF


def _leading_zeros(value):
    """``(count, zero)`` for ``value``: a log-depth leading-zero count (meaningless if zero)."""
    width = max(2, 1 << (len(value) - 1).bit_length())
    padded = Cat(Const(0, width - len(value)), value)   # pad below: same count for nonzero values

    def tree(v):
        if len(v) == 2:
            return ~v[1], ~(v[0] | v[1])
        half = len(v) // 2
        count_hi, zero_hi = tree(v[half:])
        count_lo, zero_lo = tree(v[:half])
        return Cat(Mux(zero_hi, count_lo, count_hi), zero_hi), zero_hi & zero_lo

    return tree(padded)


def _valid_pipeline(m, valid, result_valid, latency):
    prev = valid
    for i in range(latency):
        stage = Signal(name=f"valid_{i + 1}")
        m.d.sync += stage.eq(prev)
        prev = stage
    m.d.comb += result_valid.eq(prev)


def _round_pack(m, sign, exp, frac, round_up, zero, overflow):
    """The packed result of a rounding stage.

    ``exp`` is the biased exponent of the normalized but unrounded value (only meaningful when
    neither ``zero`` nor ``overflow``), ``frac`` its 23 fraction bits; ``round_up`` adds one unit
    in the last place. A carry out of the fraction increments the exponent, and out of exponent 254
    gives exponent 255 with a zero fraction: infinity.
    """
    magnitude = Signal(31)
    m.d.comb += magnitude.eq(Cat(frac, exp[:8]) + round_up)
    return Mux(zero, Cat(Const(0, 31), sign),
               Mux(overflow, Cat(Const(0, 23), Const(_EXP_INF, 8), sign),
                   Cat(magnitude, sign)))


class Fp16ToFp32(wiring.Component):
    """``result`` = binary32 equal to the binary16 ``half``; latency 1.

    Always exact: zeros keep their sign, subnormal halves become normal binary32 values.
    ``special`` is 1 when ``half`` is an infinity or NaN (exponent 31); ``result`` then holds the
    corresponding binary32 infinity or NaN (fraction bits moved up), which callers may ignore.
    """

    latency = 1

    valid: In(1)
    half: In(16)
    result: Out(32)
    special: Out(1)
    result_valid: Out(1)

    def elaborate(self, platform):
        m = Module()
        sign, exp, frac = self.half[15], self.half[10:15], self.half[:10]

        lz, _ = _leading_zeros(frac)
        shifted = Signal(10)
        m.d.comb += shifted.eq(frac << (lz + 1))   # a subnormal's leading one shifted out

        out_exp = Signal(8)
        out_frac = Signal(23)
        with m.If(exp == 0x1F):
            m.d.comb += [out_exp.eq(_EXP_INF), out_frac.eq(frac << 13)]
        with m.Elif(exp != 0):
            m.d.comb += [out_exp.eq(exp + (127 - 15)), out_frac.eq(frac << 13)]
        with m.Elif(frac != 0):
            # frac · 2**-24 with its leading one at bit 9 - lz: exponent (9 - lz) - 24 + 127.
            m.d.comb += [out_exp.eq(112 - lz), out_frac.eq(shifted << 13)]
        m.d.sync += [self.result.eq(Cat(out_frac, out_exp, sign)), self.special.eq(exp == 0x1F)]
        _valid_pipeline(m, self.valid, self.result_valid, self.latency)
        return m


class IntToFp32(wiring.Component):
    """``result`` = the signed ``width``-bit integer ``value`` as binary32; latency 3.

    Rounded to nearest, ties to even (exact when ``|value| < 2**24``); 0 becomes +0.

    Stages: 1. sign and magnitude (a negation); 2. leading-zero count and the normalizing shift
    by its multiple of 4; 3. the remaining shift by 0..3, rounding and packing.
    """

    latency = 3

    def __init__(self, width):
        if not isinstance(width, int) or not 1 <= width <= 32:
            raise ValueError(f"width must be an integer from 1 to 32, not {width!r}")
        self.width = width
        super().__init__({
            "valid": In(1),
            "value": In(signed(width)),
            "result": Out(32),
            "result_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        w = self.width

        # Stage 1: sign and magnitude (|-2**(w-1)| = 2**(w-1) still fits w unsigned bits).
        s1_sign = Signal()
        s1_mag = Signal(w)
        m.d.sync += [s1_sign.eq(self.value[w - 1]),
                     s1_mag.eq(Mux(self.value[w - 1], -self.value, self.value)[:w])]

        # Stage 2: count leading zeros, shift by the count's multiple of 4 (the rest of the
        # normalizing shift, which puts the leading one at bit w-1, waits for stage 3).
        lz, zero = _leading_zeros(s1_mag)
        s2_sign = Signal()
        s2_zero = Signal()
        s2_coarse = Signal(w)
        s2_fine = Signal(2)
        s2_exp = Signal(8)
        m.d.sync += [s2_sign.eq(s1_sign), s2_zero.eq(zero), s2_exp.eq(127 + w - 1 - lz),
                     s2_coarse.eq(s1_mag << Cat(Const(0, 2), lz[2:])), s2_fine.eq(lz[:2])]

        # Stage 3: the rest of the shift, round to 24 significant bits and pack (no overflow:
        # |value| <= 2**31).
        norm = Signal(w)
        m.d.comb += norm.eq(s2_coarse << s2_fine)
        if w <= 24:
            frac = Cat(Const(0, 24 - w), norm[:w - 1])
            round_up = Const(0)
        else:
            frac = norm[w - 24:w - 1]
            guard = norm[w - 25]
            sticky = norm[:w - 25].any() if w > 25 else Const(0)
            round_up = guard & (sticky | frac[0])
        m.d.sync += self.result.eq(_round_pack(m, s2_sign, s2_exp, frac, round_up,
                                               zero=s2_zero, overflow=Const(0)))
        _valid_pipeline(m, self.valid, self.result_valid, self.latency)
        return m


class Fp32Multiply(wiring.Component):
    """``result`` = ``a · b`` in binary32, round to nearest even, flush-to-zero; latency 5.

    Stages: 1. unpack (registered significands, sign, exponent sum); 2. partial products of
    significand pieces (12 × 12 bits, or a × 6 bits in logic); 3. their sum, the 48-bit product; 4. one-bit
    normalization, guard and sticky bits, the rounding decision; 5. rounding increment, flush,
    overflow and packing.

    Parameters
    ----------
    a_bits, b_bits : int
        Significant bits of each operand's 24-bit significand (implicit one included) that can be
        nonzero: the caller guarantees the low ``24 - a_bits`` fraction bits of ``a`` are zero
        (a binary16 value converted to binary32 has 11, an integer below ``2**n`` in magnitude
        at most ``n``). Fewer bits, fewer and smaller partial products: 24 × 24 is four
        12 × 12, 11 × 11 is one.
    multiplier : "infer" or "lut"
        "infer": each partial product is a plain ``*`` (a DSP on an FPGA that has them);
        "lut": shift-and-add, which synthesizers build in logic (Yosys as a carry-save tree),
        for boards whose DSPs all serve the array.
    """

    latency = 5

    valid: In(1)
    a: In(32)
    b: In(32)
    result: Out(32)
    result_valid: Out(1)

    def __init__(self, *, a_bits=24, b_bits=24, multiplier="infer"):
        for name, bits in (("a_bits", a_bits), ("b_bits", b_bits)):
            if not (isinstance(bits, int) and 1 <= bits <= 24):
                raise ValueError(f"{name} must be an integer in 1..24, not {bits!r}")
        if multiplier not in ("infer", "lut"):
            raise ValueError(f"multiplier must be 'infer' or 'lut', not {multiplier!r}")
        self._a_bits, self._b_bits, self._multiplier = a_bits, b_bits, multiplier
        super().__init__()

    def _product(self, x, y):
        if self._multiplier == "infer":
            return x * y
        return sum(Mux(y[i], x << i, 0) for i in range(len(y)))

    def elaborate(self, platform):
        m = Module()
        a_exp, b_exp = self.a[23:31], self.b[23:31]
        a_bits, b_bits = self._a_bits, self._b_bits

        # Stage 1: unpack. The exponent is biased and assumes a product in [1, 2). Only the top
        # a_bits (b_bits) of each significand are kept: the rest are zero.
        s1_sign = Signal()
        s1_zero = Signal()
        s1_exp = Signal(signed(10))
        s1_a = Signal(a_bits)
        s1_b = Signal(b_bits)
        m.d.sync += [
            s1_sign.eq(self.a[31] ^ self.b[31]),
            s1_zero.eq((a_exp == 0) | (b_exp == 0)),
            s1_exp.eq(a_exp + b_exp - 127),
            s1_a.eq(Cat(self.a[24 - a_bits:23], 1)),
            s1_b.eq(Cat(self.b[24 - b_bits:23], 1)),
        ]

        # Stage 2: partial products of pieces of at most 12 × 12 bits (one DSP each), or in logic
        # of all of a by 6 bits of b (a shallow adder tree each); stage 3 sums at most four.
        lut = self._multiplier == "lut"

        def pieces(value, width):
            return [(lo, value[lo:lo + width]) for lo in range(0, len(value), width)]

        s2_sign, s2_zero, s2_exp = Signal(), Signal(), Signal(signed(10))
        partials = []
        m.d.sync += [s2_sign.eq(s1_sign), s2_zero.eq(s1_zero), s2_exp.eq(s1_exp)]
        for a_lo, a_piece in pieces(s1_a, a_bits if lut else 12):
            for b_lo, b_piece in pieces(s1_b, 6 if lut else 12):
                p = Signal(len(a_piece) + len(b_piece), name=f"s2_p{a_lo}_{b_lo}")
                m.d.sync += p.eq(self._product(a_piece, b_piece))
                partials.append((a_lo + b_lo, p))

        # Stage 3: the product of the full significands, in [2**46, 2**48).
        s3_sign, s3_zero, s3_exp = Signal(), Signal(), Signal(signed(10))
        s3_prod = Signal(48)
        m.d.sync += [
            s3_sign.eq(s2_sign), s3_zero.eq(s2_zero), s3_exp.eq(s2_exp),
            s3_prod.eq(sum(p << shift for shift, p in partials) << (48 - a_bits - b_bits)),
        ]

        # Stage 4: normalize to [1, 2) (a product >= 2 shifts right by one), decide rounding.
        top = s3_prod[47]
        frac = Mux(top, s3_prod[24:47], s3_prod[23:46])
        guard = Mux(top, s3_prod[23], s3_prod[22])
        sticky = Mux(top, s3_prod[:23].any(), s3_prod[:22].any())
        s4_sign, s4_zero, s4_exp = Signal(), Signal(), Signal(signed(10))
        s4_frac = Signal(23)
        s4_round = Signal()
        m.d.sync += [
            s4_sign.eq(s3_sign), s4_zero.eq(s3_zero), s4_exp.eq(s3_exp + top),
            s4_frac.eq(frac), s4_round.eq(guard & (sticky | frac[0])),
        ]

        # Stage 5: round and pack; a normalized exponent <= 0 means |exact| < 2**-126: flush.
        m.d.sync += self.result.eq(_round_pack(
            m, s4_sign, s4_exp, s4_frac, s4_round,
            zero=s4_zero | (s4_exp <= 0), overflow=s4_exp >= _EXP_INF))
        _valid_pipeline(m, self.valid, self.result_valid, self.latency)
        return m


class Fp32Add(wiring.Component):
    """``result`` = ``a + b`` in binary32, round to nearest even, flush-to-zero; latency 5.

    Stages: 1. order the operands by magnitude, exponent difference; 2. align the smaller
    significand (guard, round and sticky bits kept); 3. add or subtract significands;
    4. leading-zero count and the normalizing shift by its multiple of 4; 5. the remaining shift
    by 0..3, rounding, flush, overflow and packing.
    """

    latency = 5

    valid: In(1)
    a: In(32)
    b: In(32)
    result: Out(32)
    result_valid: Out(1)

    def elaborate(self, platform):
        m = Module()
        a_exp, b_exp = self.a[23:31], self.b[23:31]

        # Stage 1: big is the operand of larger magnitude (for nonnegative binary32 values the
        # bit patterns order like the numbers), small the other.
        swap = self.b[:31] > self.a[:31]
        big, small = Mux(swap, self.b, self.a), Mux(swap, self.a, self.b)
        s1_sign = Signal()        # the sign of big, and of any nonzero sum
        s1_sub = Signal()         # effective subtraction
        s1_exp = Signal(8)
        s1_diff = Signal(8)
        s1_big = Signal(24)       # significands (zero for a zero operand)
        s1_small = Signal(24)
        m.d.sync += [
            s1_sign.eq(big[31]),
            s1_sub.eq(self.a[31] ^ self.b[31]),
            s1_exp.eq(big[23:31]),
            s1_diff.eq(Mux(swap, b_exp - a_exp, a_exp - b_exp)),
            s1_big.eq(Cat(big[:23], big[23:31] != 0)),
            s1_small.eq(Cat(small[:23], small[23:31] != 0)),
        ]

        # Stage 2: align. Both significands get guard, round and sticky bits below them (27
        # bits); the small one is shifted right by the exponent difference, and sticky is the OR
        # of the bits shifted out (bit i of the significand is lost when i + 2 < shift), found
        # beside the shifter rather than after it. Any shift of 26 or more leaves only sticky;
        # 31 stands for all of them.
        shift = s1_diff[:5] | s1_diff[5:].any().replicate(5)
        lost = Cat(*(shift > i + 2 for i in range(24)))
        s2_sign, s2_sub, s2_exp = Signal(), Signal(), Signal(8)
        s2_big = Signal(27)
        s2_small = Signal(27)
        m.d.sync += [
            s2_sign.eq(s1_sign), s2_sub.eq(s1_sub), s2_exp.eq(s1_exp),
            s2_big.eq(Cat(Const(0, 3), s1_big)),
            s2_small.eq(Cat((s1_small & lost).any(), Cat(Const(0, 2), s1_small) >> shift)),
        ]

        # Stage 3: add or subtract (big >= small, so no negative difference); 28 bits for the
        # carry. The significand's units bit is at bit 26.
        s3_sign, s3_sub, s3_exp = Signal(), Signal(), Signal(8)
        s3_sum = Signal(28)
        m.d.sync += [
            s3_sign.eq(s2_sign), s3_sub.eq(s2_sub), s3_exp.eq(s2_exp),
            s3_sum.eq(Mux(s2_sub, s2_big - s2_small, s2_big + s2_small)),
        ]

        # Stage 4: count leading zeros, shift by the count's multiple of 4. The normalized value
        # has its leading one at bit 27; the exponent grows by one for a carry (no shift) and
        # shrinks by one per further place shifted.
        lz, zero = _leading_zeros(s3_sum)
        s4_sign, s4_zero = Signal(), Signal()
        s4_exp = Signal(signed(10))
        s4_coarse = Signal(28)
        s4_fine = Signal(2)
        m.d.sync += [
            s4_sign.eq(Mux(zero, s3_sign & ~s3_sub, s3_sign)),   # x + (-x) = +0
            s4_zero.eq(zero),
            s4_exp.eq(s3_exp + 1 - lz),
            s4_coarse.eq(s3_sum << Cat(Const(0, 2), lz[2:])),
            s4_fine.eq(lz[:2]),
        ]

        # Stage 5: the rest of the shift (0..3 places), round and pack; a normalized exponent
        # <= 0 means |exact| < 2**-126: flush.
        norm = Signal(28)
        m.d.comb += norm.eq(s4_coarse << s4_fine)
        frac = norm[4:27]
        guard = norm[3]
        sticky = norm[:3].any()
        m.d.sync += self.result.eq(_round_pack(
            m, s4_sign, s4_exp, frac, guard & (sticky | frac[0]),
            zero=s4_zero | (s4_exp <= 0), overflow=s4_exp >= _EXP_INF))
        _valid_pipeline(m, self.valid, self.result_valid, self.latency)
        return m
