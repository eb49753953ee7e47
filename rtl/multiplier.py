"""Two signed 8×8 multipliers with a registered output, packed into one iCE40 DSP.

The iCE40UP5K has eight SB_MAC16 blocks; in their 8×8 mode each computes two independent signed
8×8 products, so eight DSPs serve sixteen PEs. On an iCE40 platform this elaborates to that
primitive; everywhere else (simulation, other FPGAs) to the same arithmetic in plain Amaranth, so
the simulated board runs the same design the bitstream holds.
"""

from amaranth.hdl import Cat, ClockSignal, Instance, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PairMultiplier"]


def _is_ice40(platform):
    try:
        from amaranth.vendor import SiliconBluePlatform
    except ImportError:     # pragma: no cover
        return False
    return isinstance(platform, SiliconBluePlatform)


class PairMultiplier(wiring.Component):
    """``p0 = a0 · w0`` and ``p1 = a1 · w1`` (signed 8-bit), one cycle after the operands."""

    a0: In(data.signed(8))
    w0: In(data.signed(8))
    a1: In(data.signed(8))
    w1: In(data.signed(8))
    p0: Out(data.signed(16))
    p1: Out(data.signed(16))

    def elaborate(self, platform):
        m = Module()
        if _is_ice40(platform):
            out = Signal(32)
            m.submodules.dsp = Instance(
                "SB_MAC16",
                p_MODE_8x8=1, p_A_SIGNED=1, p_B_SIGNED=1,
                # The 8×8 products' own pipeline registers are the PE's product register.
                p_TOP_8x8_MULT_REG=1, p_BOT_8x8_MULT_REG=1,
                p_TOPOUTPUT_SELECT=2, p_BOTOUTPUT_SELECT=2,
                i_CLK=ClockSignal("sync"), i_CE=1,
                i_A=Cat(self.a1, self.a0), i_B=Cat(self.w1, self.w0), i_C=0, i_D=0,
                i_AHOLD=0, i_BHOLD=0, i_CHOLD=0, i_DHOLD=0,
                i_IRSTTOP=0, i_IRSTBOT=0, i_ORSTTOP=0, i_ORSTBOT=0,
                i_OLOADTOP=0, i_OLOADBOT=0, i_ADDSUBTOP=0, i_ADDSUBBOT=0,
                i_OHOLDTOP=0, i_OHOLDBOT=0, i_CI=0, i_ACCUMCI=0, i_SIGNEXTIN=0,
                o_O=out)
            # Top half (A[15:8]·B[15:8]) is O[31:16], bottom half (A[7:0]·B[7:0]) is O[15:0].
            m.d.comb += [self.p0.eq(out[16:]), self.p1.eq(out[:16])]
        else:
            m.d.sync += [self.p0.eq(self.a0 * self.w0), self.p1.eq(self.a1 * self.w1)]
        return m
