"""Binary32 multiplication, pipelined, with its significand product in DSPs or in logic; the
arithmetic is described in `rtl.fp32`."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .delay import delay
from .fp32_stages import EXP_INF, round_pack, valid_pipeline

__all__ = ["LUT_PIECE", "Fp32Multiply"]

# In logic, a partial product is the operand a times this many bits of b: a sum of at most four
# shifted copies of a (two adder levels) between registers. Six bits a stage (three levels, and
# sums of four partials after them) was the ULX3S-25F's critical path at 100 MHz.
LUT_PIECE = 4


class Fp32Multiply(wiring.Component):
    """``result`` = ``a · b`` in binary32, round to nearest even, flush-to-zero.

    Stages: 1. unpack (registered significands, sign, exponent sum); 2. partial products of
    significand pieces; then their sum, the 48-bit product: in one stage of at most four 12 × 12
    products with "infer", in two with "lut" (pairs of the ``a × LUT_PIECE``-bit products, then
    the remaining three or fewer); then normalization by one place, guard and sticky bits and
    the rounding decision; last, the rounding increment, flush, overflow and packing. `latency`
    is 5 with "infer" and 6 with "lut".

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

    Attributes
    ----------
    latency : int
        Cycles from the operands to ``result``.
    """

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
        self.latency = self.latency_of(multiplier)
        super().__init__()

    @staticmethod
    def latency_of(multiplier):
        """The latency of a multiplier of kind ``multiplier`` ("infer" or "lut")."""
        return 6 if multiplier == "lut" else 5

    def _partials(self, m, a, b):
        """Stage 2: registered ``(shift, product)`` pieces whose sum is ``a · b``."""
        lut = self._multiplier == "lut"

        def pieces(value, width):
            return [(lo, value[lo:lo + width]) for lo in range(0, len(value), width)]

        partials = []
        for a_lo, a_piece in pieces(a, len(a) if lut else 12):
            for b_lo, b_piece in pieces(b, LUT_PIECE if lut else 12):
                p = Signal(len(a_piece) + len(b_piece), name=f"s2_p{a_lo}_{b_lo}")
                if lut:
                    m.d.sync += p.eq(sum(Mux(b_piece[i], a_piece << i, 0)
                                         for i in range(len(b_piece))))
                else:
                    m.d.sync += p.eq(a_piece * b_piece)
                partials.append((a_lo + b_lo, p))
        if lut:         # stage 2b: pairs of partial products
            pairs = []
            for i in range(0, len(partials), 2):
                (lo, p), rest = partials[i], partials[i + 1:i + 2]
                width = len(a) + len(b) - lo
                s = Signal(width, name=f"s2b_p{lo}")
                m.d.sync += s.eq(p + sum((q << (shift - lo)) for shift, q in rest))
                pairs.append((lo, s))
            partials = pairs
        return partials

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

        partials = self._partials(m, s1_a, s1_b)
        # Sign, zero and exponent travel beside the partial products.
        beside = Cat(s1_sign, s1_zero, s1_exp)
        s2 = delay(m, beside, self.latency - 4, "s2")

        # The product of the full significands, in [2**46, 2**48).
        s3_sign, s3_zero, s3_exp = Signal(), Signal(), Signal(signed(10))
        s3_prod = Signal(48)
        m.d.sync += [
            Cat(s3_sign, s3_zero, s3_exp).eq(s2),
            s3_prod.eq(sum(p << shift for shift, p in partials) << (48 - a_bits - b_bits)),
        ]

        # Normalize to [1, 2) (a product >= 2 shifts right by one), decide rounding.
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

        # Round and pack; a normalized exponent <= 0 means |exact| < 2**-126: flush.
        m.d.sync += self.result.eq(round_pack(
            m, s4_sign, s4_exp, s4_frac, s4_round,
            zero=s4_zero | (s4_exp <= 0), overflow=s4_exp >= EXP_INF))
        valid_pipeline(m, self.valid, self.result_valid, self.latency)
        return m
