"""Binary32 addition, pipelined; the arithmetic is described in `rtl.fp32`."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .fp32_stages import EXP_INF, leading_zeros, round_pack, valid_pipeline

__all__ = ["Fp32Add"]


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
        lz, zero = leading_zeros(s3_sum)
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
        m.d.sync += self.result.eq(round_pack(
            m, s4_sign, s4_exp, frac, guard & (sticky | frac[0]),
            zero=s4_zero | (s4_exp <= 0), overflow=s4_exp >= EXP_INF))
        valid_pipeline(m, self.valid, self.result_valid, self.latency)
        return m
