"""Conversions into binary32: from binary16 (exact) and from signed integers (rounded); the
arithmetic is described in `rtl.fp32`."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .fp32_stages import EXP_INF, leading_zeros, round_pack, valid_pipeline

__all__ = ["Fp16ToFp32", "IntToFp32"]


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

        lz, _ = leading_zeros(frac)
        shifted = Signal(10)
        m.d.comb += shifted.eq(frac << (lz + 1))   # a subnormal's leading one shifted out

        out_exp = Signal(8)
        out_frac = Signal(23)
        with m.If(exp == 0x1F):
            m.d.comb += [out_exp.eq(EXP_INF), out_frac.eq(frac << 13)]
        with m.Elif(exp != 0):
            m.d.comb += [out_exp.eq(exp + (127 - 15)), out_frac.eq(frac << 13)]
        with m.Elif(frac != 0):
            # frac · 2**-24 with its leading one at bit 9 - lz: exponent (9 - lz) - 24 + 127.
            m.d.comb += [out_exp.eq(112 - lz), out_frac.eq(shifted << 13)]
        m.d.sync += [self.result.eq(Cat(out_frac, out_exp, sign)), self.special.eq(exp == 0x1F)]
        valid_pipeline(m, self.valid, self.result_valid, self.latency)
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
        lz, zero = leading_zeros(s1_mag)
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
        m.d.sync += self.result.eq(round_pack(m, s2_sign, s2_exp, frac, round_up,
                                               zero=s2_zero, overflow=Const(0)))
        valid_pipeline(m, self.valid, self.result_valid, self.latency)
        return m
