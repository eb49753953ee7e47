"""Two 4-bit-weight products from one multiplier: ``a · w0`` and ``a · w1`` in one ECP5
MULT18X18D.

The 4-bit weight formats give weights in [-8, 15] (Q4_0's ``q - 8`` in [-8, 7], Q4_1's raw nibble
in [0, 15]): a 5-bit signed number. Against an int8 activation ``a`` in [-128, 127] a product has
magnitude at most 128 · 15 = 1920, below 2048, so it fits a 12-bit signed field. An 18 × 18
multiplier can therefore hold two such products side by side if one operand carries two weights
12 bits apart:

    A = w0 + w1 · 2**12          (at most 15 + 15 · 4096 = 61455: fits 18 bits signed)
    P = a · A = a · w0 + (a · w1) · 2**12

* The low field ``P[0:12]``, read as a signed number, is ``a · w0`` exactly: the second term
  leaves the low 12 bits alone, and ``a · w0`` fits them.
* The field above, ``P[12:24]``, is ``a · w1`` plus the low field's sign extension: when
  ``a · w0`` is negative, the true sum borrowed 1 from the upper field (``P >> 12`` is
  ``a · w1 + floor(a · w0 / 2**12)``, and the floor is -1 exactly when the low field's sign bit
  ``P[11]`` is set). So ``a · w1 = P[12:24] + P[11]``, with ``P[12:24]`` read as signed. Before the
  correction the field is within [-1921, 1920] and after it within [-1920, 1920]: both fit 12
  bits signed, so ``p1`` needs no 13th bit.

Building ``A`` is also not a plain concatenation: as a 12-bit field ``w0`` is sign-extended, and
a negative ``w0`` adds -2**12 to the sum, so the upper field is ``w1 - 1`` when ``w0 < 0``
(``w1 - w0[4]``, a 6-bit value within [-9, 15]: it fits the 6 bits above bit 12). That is a small
decrement on the weights before the DSP's input register.

Latency: 3 cycles. The DSP's input registers (``REG_INPUTA/B``) and output register
(``REG_OUTPUT``) are two of them, as in `RegisteredMultiplier`. The third is a fabric register
after the split that holds ``p0`` and the corrected ``p1``: without it the path from the DSP's
output register would cross a route out of the DSP column, the 12-bit increment's carry chain
and then the PE's 32-bit accumulator carry chain before its flip-flops, two carry chains in
series on one cycle, where the int8 array already spends most of its 10 ns (speed grade 6,
100 MHz) on the route and one chain. With the register each of the two paths has one route and
one carry chain. It costs 24 flip-flops per pair and one more step of control delay in each PE.
`elaborate` honours a subclass that sets ``latency = 2`` (the correction then combinational).
Measured out of context on the LFE5U-85F (speed 6, nextpnr seed 1), a 4-row × 4-pair grid of the
DSP packing study (boards/dsp_packing.py) reached 206 MHz with latency 3 and 133 MHz with
latency 2 (7.5 ns: DSP output, 2.3 ns route, the increment, a route, the accumulator); the full
8 × 16-pair grid with latency 3 reached 124 MHz, its critical path then in front of the DSP (the
weight register, the decrement and a 5.3 ns route into the DSP column).

On other platforms (simulation, other FPGAs) the same packing is written in plain Amaranth with
the same registers: ``A`` is built, one 18 × 18 product taken and its fields split and corrected,
so a simulation exercises the packing itself, not two separate products.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .multiplier import is_ecp5, registered_mult18x18d

__all__ = ["PackedMultiplier"]

_FIELD = 12     # bits per product field in P
_PORT = 18      # MULT18X18D operand width


class PackedMultiplier(wiring.Component):
    """``p0 = a · w0`` and ``p1 = a · w1`` (``a`` int8, ``w0``/``w1`` 5-bit signed in [-8, 15]),
    ``latency`` cycles after the operands, from one 18 × 18 multiplier (see the module docstring).

    Weights outside [-8, 15] (-16..-9) give wrong products: the fields would overflow.
    """

    latency = 3

    a: In(data.signed(8))
    w0: In(data.signed(5))
    w1: In(data.signed(5))
    p0: Out(data.signed(_FIELD))
    p1: Out(data.signed(_FIELD))

    def elaborate(self, platform):
        if self.latency not in (2, 3):
            raise ValueError(f"PackedMultiplier latency must be 2 or 3, not {self.latency}")
        m = Module()

        # A = w0 + w1·2**12, built as fields: w0 sign-extended to 12 bits, above it w1 minus
        # the borrow of a negative w0.
        low = Signal(data.signed(_FIELD))
        high = Signal(data.signed(_PORT - _FIELD))
        packed = Signal(data.signed(_PORT))
        m.d.comb += [
            low.eq(self.w0),
            high.eq(self.w1 - self.w0[-1]),
            packed.eq(Cat(low, high)),
        ]

        product = Signal(2 * _FIELD)    # P[0:24]; the bits above are copies of the sign
        if is_ecp5(platform):
            a18 = Signal(_PORT)
            b18 = Signal(_PORT)
            m.d.comb += [a18.eq(packed), b18.eq(self.a)]    # b18: sign-extended
            m.submodules.dsp, out = registered_mult18x18d(a18, b18)
            m.d.comb += product.eq(out[:2 * _FIELD])
        else:
            # The DSP's two register stages: operands in, product out.
            a_reg = Signal.like(self.a)
            packed_reg = Signal.like(packed)
            m.d.sync += [
                a_reg.eq(self.a),
                packed_reg.eq(packed),
                product.eq(a_reg * packed_reg),
            ]

        low_field = product[:_FIELD].as_signed()
        borrow = product[_FIELD - 1]
        high_field = product[_FIELD:].as_signed()
        domain = m.d.sync if self.latency == 3 else m.d.comb
        domain += [
            self.p0.eq(low_field),
            self.p1.eq(high_field + borrow),
        ]
        return m
