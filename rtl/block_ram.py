"""A block RAM with one write port and one read port, read in one cycle or, with its read data
registered, in two; on ECP5 the two-cycle form is DP16KDs with their own output registers.

An ECP5 DP16KD takes 5.8 ns from the clock to its read data. A register after it in the fabric
still leaves that plus a route in one cycle (the ULX3S-85F's critical path at 93 MHz), and Yosys
only infers DP16KDs without their output register (``REGMODE = "NOREG"``). So on ECP5 a
registered `BlockRam` instantiates the DP16KDs itself, with ``OUTREG``: the register inside the
RAM shows the data about 1 ns after the clock. The aspect ratio follows the depth
(`DP16KD_MODES`): 2048 × 9 for up to 2048 words, 512 × 36 (the pseudo-dual-port mode) for up to
512. Elsewhere, and in simulation, it is an Amaranth `Memory` and a register with the same
latency, so the simulated board reads what the bitstream reads, when it reads it.

Reading a word in the cycle it is written gives undefined data on ECP5 (the block RAM's
collision rule; Yosys adds bypass logic to hide it, and that logic was on the critical path
too). The engine never does it: it writes one weight bank while the array reads the other, and
activations before the GEMM that reads them.
"""

from amaranth.hdl import ClockSignal, Instance, Module, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .multiplier import is_ecp5

__all__ = ["DP16KD_MODES", "BlockRam", "dp16kd_mode"]

# ECP5 DP16KD aspect ratios, shallowest first: (words, data bits). The word address sits in the
# top bits of the 14-bit address pins (AD13 down); the pins below it are tied low, except the
# byte enables of the 18- and 36-bit modes (AD1..0, AD3..0 of the write port), tied to the
# write enable.
DP16KD_MODES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))


def dp16kd_mode(depth):
    """The (words, bits) DP16KD mode for a RAM of ``depth`` words, or None beyond 16384."""
    for words, bits in DP16KD_MODES:
        if depth <= words:
            return words, bits
    return None


class BlockRam(wiring.Component):
    """``depth`` words of ``shape``; ``r_data`` shows the word at ``r_addr`` `latency` cycles
    after the address: 1, or 2 with ``registered``.

    ``w_en`` has one bit per ``granularity`` bits of the word (one bit for the whole word when
    ``granularity`` is None).
    """

    def __init__(self, shape, depth, *, registered=False, granularity=None):
        width = Shape.cast(shape).width
        if granularity is not None and (granularity <= 0 or width % granularity):
            raise ValueError(f"granularity must divide the word's {width} bits, not "
                             f"{granularity!r}")
        self._shape, self._depth = shape, depth
        self._granularity = granularity
        self._registered = registered
        self.latency = 2 if registered else 1
        super().__init__({
            "w_addr": In(range(depth)),
            "w_data": In(shape),
            "w_en": In(1 if granularity is None else width // granularity),
            "r_addr": In(range(depth)),
            "r_data": Out(shape),
        })

    def elaborate(self, platform):
        m = Module()
        if self._registered and is_ecp5(platform) and dp16kd_mode(self._depth):
            self._dp16kds(m)
            return m
        # Plain bits, so that the write granularity counts bits whatever the word's layout.
        m.submodules.mem = mem = Memory(shape=Shape.cast(self._shape).width, depth=self._depth,
                                        init=[])
        wr = mem.write_port(granularity=self._granularity)
        rd = mem.read_port()
        m.d.comb += [wr.addr.eq(self.w_addr), wr.data.eq(self.w_data), wr.en.eq(self.w_en),
                     rd.addr.eq(self.r_addr)]
        if self._registered:
            m.d.sync += self.r_data.eq(rd.data)
        else:
            m.d.comb += self.r_data.eq(rd.data)
        return m

    def _dp16kds(self, m):
        """Each write-enable granule of the word as a row of DP16KDs; port A writes, port B
        reads into the output registers (in the 36-bit mode both ports' data pins carry the one
        wide port's data, low half on A)."""
        words, bits = dp16kd_mode(self._depth)
        low = 14 - (words.bit_length() - 1)         # address pins below the word address
        width = Shape.cast(self._shape).width
        granule = self._granularity or width
        w_bits = Signal(width)
        r_bits = Signal(width)
        m.d.comb += [w_bits.eq(self.w_data), self.r_data.eq(r_bits)]
        index = 0
        for g in range(width // granule):
            we = self.w_en[g]
            for j in range(g * granule, (g + 1) * granule, bits):
                n = min(bits, (g + 1) * granule - j)
                ports = {"i_CLKA": ClockSignal("sync"), "i_CLKB": ClockSignal("sync"),
                         # In the 36-bit mode the byte enables are the write enable.
                         "i_CEA": 1, "i_OCEA": 1, "i_RSTA": 0, "i_WEA": 1 if bits == 36 else we,
                         "i_CEB": 1, "i_OCEB": 1, "i_RSTB": 0, "i_WEB": 0}
                for c in range(3):
                    ports[f"i_CSA{c}"] = ports[f"i_CSB{c}"] = 0
                byte_enables = {36: 4, 18: 2}.get(bits, 0)
                for a in range(14):
                    k = a - low
                    inside = 0 <= k < len(self.w_addr)
                    ports[f"i_ADA{a}"] = self.w_addr[k] if inside else \
                        (we if a < byte_enables else 0)
                    ports[f"i_ADB{a}"] = self.r_addr[k] if inside else 0
                for d in range(36):
                    port, pin = ("A", d) if d < 18 else ("B", d - 18)
                    ports[f"i_DI{port}{pin}"] = w_bits[j + d] if d < n else 0
                    if d < n:
                        # Port B's own data out in the narrow modes; A then B in the 36-bit one.
                        ports[f"o_DO{port if bits == 36 else 'B'}{pin}"] = r_bits[j + d]
                m.submodules[f"ram_{index}"] = Instance(
                    "DP16KD",
                    p_DATA_WIDTH_A=bits, p_DATA_WIDTH_B=bits,
                    p_REGMODE_A="OUTREG" if bits == 36 else "NOREG", p_REGMODE_B="OUTREG",
                    p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                    p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                    p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED",
                    **ports)
                index += 1
