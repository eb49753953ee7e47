"""PLL settings found by search (our own arithmetic, from the vendors' published ranges), and the
PLL primitives that make the ``sync`` clock domain from a board's oscillator."""

import dataclasses

from amaranth.hdl import ClockDomain, ClockSignal, Const, Instance, ResetSignal, Signal

__all__ = ["ECP5PLL", "ICE40PLL", "GowinPLL", "add_sync_domain", "pll_for"]


def _closest(candidates, f_out, *, vco_centre):
    """The PLL setting nearest ``f_out``; among equals, the one whose VCO is nearest
    ``vco_centre`` (the middle of its range), then the first found. None if there is none."""
    return min(candidates, key=lambda pll: (abs(pll.f_out - f_out), abs(pll.f_vco - vco_centre)),
               default=None)


@dataclasses.dataclass(frozen=True)
class ICE40PLL:
    """SB_PLL40 in SIMPLE feedback: f_out = f_in · (DIVF+1) / ((DIVR+1) · 2**DIVQ).

    Ranges (iCE40 sysCLOCK PLL guide): phase detector input 10–133 MHz, VCO 533–1066 MHz,
    output 16–275 MHz; DIVR 0–15, DIVF 0–127, DIVQ 1–6.
    """

    f_in: float
    divr: int
    divf: int
    divq: int

    @property
    def f_pfd(self):
        return self.f_in / (self.divr + 1)

    @property
    def f_vco(self):
        return self.f_pfd * (self.divf + 1)

    @property
    def f_out(self):
        return self.f_vco / 2 ** self.divq

    @property
    def filter_range(self):
        # Loop filter setting by phase detector frequency (MHz), from the PLL guide's table.
        f = self.f_pfd / 1e6
        for limit, value in ((17, 1), (26, 2), (44, 3), (66, 4), (101, 5)):
            if f < limit:
                return value
        return 6

    @classmethod
    def search(cls, f_in, f_out):
        best = None
        for divr in range(16):
            f_pfd = f_in / (divr + 1)
            if not 10e6 <= f_pfd <= 133e6:
                continue
            for divf in range(128):
                f_vco = f_pfd * (divf + 1)
                if not 533e6 <= f_vco <= 1066e6:
                    continue
                for divq in range(1, 7):
                    pll = cls(f_in, divr, divf, divq)
                    if best is None or abs(pll.f_out - f_out) < abs(best.f_out - f_out):
                        best = pll
        return best

    def elaborate(self, m, clk_port):
        clk = Signal()
        lock = Signal()
        m.submodules.pll = Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE", p_DIVR=self.divr, p_DIVF=self.divf, p_DIVQ=self.divq,
            p_FILTER_RANGE=self.filter_range,
            i_PACKAGEPIN=clk_port.io, i_RESETB=Const(1), i_BYPASS=Const(0),
            o_PLLOUTGLOBAL=clk, o_LOCK=lock)
        return clk, lock


@dataclasses.dataclass(frozen=True)
class ECP5PLL:
    """EHXPLLL with CLKOP fed back: f_out = f_in · CLKFB_DIV / CLKI_DIV, VCO = f_out · CLKOP_DIV.

    Ranges (ECP5 sysCLOCK guide): phase detector input 3.125–400 MHz, VCO 400–800 MHz,
    output 3.125–400 MHz; dividers 1–128 (CLKFB_DIV 1–80).
    """

    f_in: float
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def f_out(self):
        return self.f_in * self.clkfb_div / self.clki_div

    @property
    def f_vco(self):
        return self.f_out * self.clkop_div

    @classmethod
    def search(cls, f_in, f_out):
        candidates = (
            pll
            for clki_div in range(1, 129) if 3.125e6 <= f_in / clki_div <= 400e6
            for clkfb_div in range(1, 81)
            for clkop_div in range(1, 129)
            for pll in [cls(f_in, clki_div, clkfb_div, clkop_div)]
            if 400e6 <= pll.f_vco <= 800e6 and 3.125e6 <= pll.f_out <= 400e6)
        return _closest(candidates, f_out, vco_centre=600e6)

    def elaborate(self, m, clk_port):
        from amaranth.lib import io

        m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_port)
        clk = Signal()
        lock = Signal()
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{self.f_in / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{self.f_out / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_CLKI_DIV=self.clki_div, p_CLKFB_DIV=self.clkfb_div, p_CLKOP_DIV=self.clkop_div,
            p_CLKOP_CPHASE=self.clkop_div - 1, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            i_CLKI=clk_buf.i, i_CLKFB=clk, i_RST=Const(0), i_STDBY=Const(0),
            i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(0),
            i_PHASESTEP=Const(0), i_PHASELOADREG=Const(0), i_PLLWAKESYNC=Const(0),
            i_ENCLKOP=Const(0), o_CLKOP=clk, o_LOCK=lock)
        return clk, lock


@dataclasses.dataclass(frozen=True)
class GowinPLL:
    """rPLL with internal feedback: f_out = f_in · (FBDIV_SEL+1) / (IDIV_SEL+1), VCO = f_out ·
    ODIV_SEL.

    Ranges for the GW1N(R)-9C (Gowin DS117 GW1N datasheet and UG286 clock user guide, as apycula's
    gowin_pack checks them in ``_permitted_freqs["GW1N-9C"]`` and refuses a setting outside them):
    phase detector input (FCLKIN / (IDIV_SEL+1)) 3–400 MHz, VCO 400–1200 MHz, output above 3.125
    and up to 600 MHz; IDIV_SEL and FBDIV_SEL 0–63, ODIV_SEL one of 2, 4, 8, 16, 32, 48, …, 128.

    The search keeps only settings within ``TOLERANCE`` of the asked frequency, so a target out
    of reach (above 600 MHz, say) finds none and `pll_for` says so, instead of the board quietly
    running at the nearest clock the PLL can make.
    """

    ODIV_VALUES = (2, 4, 8, 16, 32, 48, 64, 80, 96, 112, 128)
    TOLERANCE = 0.01

    f_in: float
    idiv_sel: int
    fbdiv_sel: int
    odiv_sel: int

    @property
    def f_pfd(self):
        return self.f_in / (self.idiv_sel + 1)

    @property
    def f_out(self):
        return self.f_pfd * (self.fbdiv_sel + 1)

    @property
    def f_vco(self):
        return self.f_out * self.odiv_sel

    @classmethod
    def search(cls, f_in, f_out):
        candidates = (
            pll
            for idiv_sel in range(64) if 3e6 <= f_in / (idiv_sel + 1) <= 400e6
            for fbdiv_sel in range(64)
            for odiv_sel in cls.ODIV_VALUES
            for pll in [cls(f_in, idiv_sel, fbdiv_sel, odiv_sel)]
            if 400e6 <= pll.f_vco <= 1200e6 and 3.125e6 < pll.f_out <= 600e6
            and abs(pll.f_out - f_out) <= cls.TOLERANCE * f_out)
        return _closest(candidates, f_out, vco_centre=800e6)

    def elaborate(self, m, clk_port):
        from amaranth.lib import io

        m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_port)
        # Named, so that the SDC's ``get_nets`` (boards/gowin.py) finds the clock net by name.
        clk = Signal(name="pll_clk")
        lock = Signal(name="pll_lock")
        m.submodules.pll = Instance(
            "rPLL",
            p_FCLKIN=f"{self.f_in / 1e6:g}", p_DEVICE="GW1NR-9C",
            p_IDIV_SEL=self.idiv_sel, p_FBDIV_SEL=self.fbdiv_sel, p_ODIV_SEL=self.odiv_sel,
            p_DYN_IDIV_SEL="false", p_DYN_FBDIV_SEL="false", p_DYN_ODIV_SEL="false",
            p_CLKFB_SEL="internal", p_DYN_DA_EN="false", p_PSDA_SEL="0000",
            p_DUTYDA_SEL="1000", p_CLKOUT_BYPASS="false", p_CLKOUTP_BYPASS="false",
            p_CLKOUTD_BYPASS="false", p_DYN_SDIV_SEL=2, p_CLKOUTD_SRC="CLKOUT",
            p_CLKOUTD3_SRC="CLKOUT",
            i_CLKIN=clk_buf.i, i_CLKFB=Const(0), i_RESET=Const(0), i_RESET_P=Const(0),
            i_FBDSEL=Const(0, 6), i_IDSEL=Const(0, 6), i_ODSEL=Const(0, 6),
            i_PSDA=Const(0, 4), i_DUTYDA=Const(0, 4), i_FDLY=Const(0, 4),
            o_CLKOUT=clk, o_LOCK=lock)
        return clk, lock


def pll_for(family, f_in, f_out):
    pll = {"ice40": ICE40PLL, "ecp5": ECP5PLL, "gowin": GowinPLL}[family].search(f_in, f_out)
    if pll is None:
        raise ValueError(f"no {family} PLL setting makes {f_out / 1e6:g} MHz from "
                         f"{f_in / 1e6:g} MHz")
    return pll


def add_sync_domain(m, platform, pll, clk_port):
    """Drive the ``sync`` domain from ``pll``; reset is held until the PLL locks (and a few
    cycles after). The reset comes straight from a flip-flop: it reaches every register of the
    design, so no logic between it and that long route."""
    clk, lock = pll.elaborate(m, clk_port)
    m.domains.sync = ClockDomain("sync")
    m.d.comb += ClockSignal("sync").eq(clk)
    platform.add_clock_constraint(clk, pll.f_out)
    hold = Signal(4, init=0xF)
    m.domains.por = ClockDomain("por", reset_less=True)
    m.d.comb += ClockSignal("por").eq(clk)
    reset = Signal(init=1)
    with m.If(~lock):
        m.d.por += hold.eq(0xF)
    with m.Elif(hold != 0):
        m.d.por += hold.eq(hold - 1)
    m.d.por += reset.eq(~lock | (hold != 0))
    m.d.comb += ResetSignal("sync").eq(reset)
    return clk

