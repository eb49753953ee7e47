"""Multipliers placed in hard DSP blocks with their registers, for PEs that take an external
product.

* `PairMultiplier`: two signed 8×8 products with a registered output in one iCE40 SB_MAC16 (its
  8×8 mode): the iCE40UP5K's eight DSPs serve sixteen PEs.
* `RegisteredMultiplier`: one signed 8×8 product in an ECP5 MULT18X18D with its input and output
  registers on, two cycles after the operands (three with a fabric register after it). Yosys
  maps a plain ``*`` to a MULT18X18D without registers, and the routes into and out of the DSP
  column then dominate the cycle (69 MHz on the ULX3S-85F); with both register stages inside
  the DSP only one route is on each path.

On other platforms (simulation, other FPGAs) each elaborates to the same arithmetic with the same
latency in plain Amaranth, so the simulated board runs the design the bitstream holds.
"""

from amaranth.hdl import Cat, ClockSignal, Instance, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["REGISTERED_KINDS", "PairMultiplier", "RegisteredMultiplier", "is_ecp5",
           "product_latency", "registered_mult18x18d"]


def registered_mult18x18d(a18, b18):
    """An ECP5 MULT18X18D multiplying the signed 18-bit ``a18`` by ``b18`` with its input
    registers and its output register on (clock 0 = ``sync``): ``(instance, p36)``, the 36-bit
    product two cycles after the operands."""
    out = Signal(36)
    ports = {}
    # Only what Yosys' own MULT18X18D mapping connects, plus clock 0 with its enable and
    # reset: the cascade inputs (SRIA/SRIB) cannot be tied to constants from the fabric.
    for i in range(18):
        ports[f"i_A{i}"] = a18[i]
        ports[f"i_B{i}"] = b18[i]
        ports[f"i_C{i}"] = 0
    for i in range(36):
        ports[f"o_P{i}"] = out[i]
    ports.update(i_CLK0=ClockSignal("sync"), i_CE0=1, i_RST0=0)
    dsp = Instance(
        "MULT18X18D",
        p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
        p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
        p_CLK0_DIV="ENABLED", p_GSR="DISABLED", p_SOURCEB_MODE="B_SHIFT",
        p_MULT_BYPASS="DISABLED", p_RESETMODE="SYNC",
        i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
        **ports)
    return dsp, out


def _is_ice40(platform):
    try:
        from amaranth.vendor import SiliconBluePlatform
    except ImportError:     # pragma: no cover
        return False
    return isinstance(platform, SiliconBluePlatform)


def is_ecp5(platform):
    try:
        from amaranth.vendor import LatticePlatform
    except ImportError:     # pragma: no cover
        return False
    return isinstance(platform, LatticePlatform) and platform.family == "ecp5"


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


class RegisteredMultiplier(wiring.Component):
    """``p = a · w`` (signed 8-bit), two cycles after the operands (the DSP's input and output
    registers), or three with ``fabric_register``: then a register in the fabric follows. The
    DSP blocks sit in rows across the die and the placer does not always put a PE's accumulator
    beside its DSP: on the ULX3S-85F int8 build the DSP's output crossed 7 ns of routing straight
    into the accumulator's carry chain (the critical path, 98.8 and 100.4 MHz over two seeds), and
    the fabric register takes that route alone. It costs a flip-flop per product bit (2,048 on
    an 8x16 array), which the every-format 8x16 builds, whose logic is twice as large, could not
    afford: router2 stopped converging on them (reports/build_history.md, Session 23)."""

    #: Cycles from the operands to the DSP's registered product.
    DSP_LATENCY = 2

    a: In(data.signed(8))
    w: In(data.signed(8))
    p: Out(data.signed(16))

    def __init__(self, *, fabric_register=False):
        if not isinstance(fabric_register, bool):
            raise TypeError(f"fabric_register must be True or False, not {fabric_register!r}")
        self._fabric = fabric_register
        #: Cycles from the operands to their product.
        self.latency = self.DSP_LATENCY + fabric_register
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        out_domain = m.d.sync if self._fabric else m.d.comb
        if is_ecp5(platform):
            a18 = Signal(18)
            b18 = Signal(18)
            m.d.comb += [a18.eq(self.a.as_signed()), b18.eq(self.w.as_signed())]
            m.submodules.dsp, out = registered_mult18x18d(a18, b18)
            out_domain += self.p.eq(out[:16])
        else:
            a = Signal.like(self.a)
            w = Signal.like(self.w)
            product = Signal.like(self.p)
            m.d.sync += [a.eq(self.a), w.eq(self.w), product.eq(a * w)]
            out_domain += self.p.eq(product)
        return m


#: The array's multiplier kinds that put each PE's product in a `RegisteredMultiplier`, and
#: whether each adds its fabric register.
REGISTERED_KINDS = {"registered": False, "registered-fabric": True}


def product_latency(kind):
    """Cycles from a PE's operands to its product for an array's ``multiplier`` kind."""
    if kind in REGISTERED_KINDS:
        return RegisteredMultiplier.DSP_LATENCY + REGISTERED_KINDS[kind]
    return 1
