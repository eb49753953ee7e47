"""The one configuration object: it parameterizes the RTL, is what IDENTIFY reports, and is what
the host tiles for."""

import dataclasses
import struct

from systolica.protocol import DRAM_WORD_BYTES, MAX_LINK_BYTES, Feature, Format

__all__ = ["FORMAT_NAMES", "IDENTIFY_BYTES", "MULTIPLIERS", "PROTOCOL_VERSION", "SCALE_MULTIPLIERS", "Config"]

# How the array's PEs multiply (`Config.multiplier`).
MULTIPLIERS = ("infer", "pairs", "registered", "registered-fabric", "lut")

# How the block formats' binary32 scale units form their partial products (`Fp32Multiply`):
# "infer": all inferred (hard DSPs where the FPGA has them); "lut": all in logic; "mixed": the
# two binary16 × binary16 products in logic, the two wider ones inferred.
SCALE_MULTIPLIERS = ("infer", "lut", "mixed")

FORMAT_NAMES = ("int8", "q8_0", "q4_0", "q4_1")

PROTOCOL_VERSION = 2

# IDENTIFY payload: every field the host needs to adapt to the device, little-endian.
_IDENTIFY_FORMAT = "<HBBBBBBHHIIIII"
IDENTIFY_BYTES = struct.calcsize(_IDENTIFY_FORMAT)


def _check_positive(name, value, *, power_of_two=False, maximum=None):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be a positive integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    if power_of_two and value & (value - 1):
        raise ValueError(f"{name} must be a power of two, not {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, not {value!r}")


@dataclasses.dataclass(frozen=True)
class Config:
    """Accelerator configuration.

    Parameters
    ----------
    rows, cols : int
        Systolic array size: ``rows`` activation rows by ``cols`` weight columns (R×C PEs).
    link_bytes : int
        Bytes the link adapter moves per cycle in each direction (1 behind a UART; a weight row or
        more in the simulated board). A power of two, at most 32 (`protocol.MAX_LINK_BYTES`: a
        header is a whole number of words).
    act_depth : int
        Activation buffer depth in words of ``rows`` bytes: ``ceil(N / rows) * K`` must fit.
    max_k : int
        Largest reduction length K of one GEMM (depth of each of the two weight-tile banks).
    rx_fifo_words : int
        Receive FIFO depth in link words; the device advertises ``rx_fifo_words * link_bytes``
        bytes of credit.
    formats : tuple of str
        Weight formats the device carries (`FORMAT_NAMES`; reported by IDENTIFY): "int8" always,
        and any of the GGUF block formats "q8_0", "q4_0", "q4_1", which bring the block
        datapath (activations in 32-blocks with binary16 scales, the unpacker and the binary32
        scale stage; see `systolica.host.block_formats`).
    multiplier : str
        Implementation only (not reported by IDENTIFY, not compared): how the PEs multiply.
        ``"infer"``: a plain ``*`` the synthesizer maps (one hard DSP per PE where the part has
        enough, e.g. ECP5 MULT18X18D); ``"pairs"``: two PEs share one `PairMultiplier` (an iCE40
        SB_MAC16 in its dual 8×8 mode); ``"registered"``: one DSP per PE with its input and
        output registers (an ECP5 MULT18X18D; two cycles of latency); ``"registered-fabric"``:
        the same with a register in the fabric after each DSP (three cycles; for a netlist whose
        DSP outputs cross the die to their accumulators); ``"lut"``: shift-and-add in logic.
    buffer_piece_depth : int
        Implementation only: 0 keeps the activation and weight buffers one memory each, read in
        one cycle; a power of two P cuts them into memories of at most P words whose read data
        are registered before the read mux (`BufferMemory`; one more cycle of read latency), for
        FPGAs whose block RAMs are slow to show their data (ECP5: 2048).
    scale_share : int
        Implementation only, like ``multiplier``: array columns that share one binary32 scale
        unit of the block formats (`ScaleUnit`); it must divide ``cols``. 0 (the default) picks
        the largest divisor of ``cols`` with ``rows * scale_share <= 32``: the fewest units that
        still keep up with the array (each unit's logic is evaluated every simulated cycle, so
        fewer units also make the simulated board faster). A unit takes one block
        dot product a cycle and a PE finishes a block every 32 cycles, so with ``rows *
        scale_share`` up to 32 the units keep up with the array; beyond that the block-format
        GEMMs run one block per `block_period` cycles instead of 32. Sharing saves logic and
        multipliers where the part is short of them (or where a GEMM is link-bound anyway).
    scale_multiplier : str
        Implementation only: how the scale units multiply their significands
        (`SCALE_MULTIPLIERS`): ``"infer"`` (hard DSPs where there are any),
        ``"lut"`` (in logic, for parts whose DSPs all serve the array), ``"mixed"`` (the
        binary16 × binary16 products in logic, the wider ones on DSPs).
    abort_cycles : int
        A frame that stops arriving is dropped after this many cycles in which the device waited
        for its next word (protocol: the idle abort; a LOAD_A or GEMM cut off gets an
        ``ABORTED`` reply). Reported by IDENTIFY. The default, 2**16, is the simulated
        board's, whose clock stops while the host is away (and runs at most 2**18 quiet cycles
        before it waits for the host: sim/board_harness.cpp); a catalog board takes a quarter
        of a second of its clock (`boards.board.ABORT_SECONDS`), well beyond a USB-UART's
        latency while the host waits for credit. 0: no idle abort (the iCEBreaker, whose part
        is full).
    lane_weights : int
        Implementation only: weights per word of the block formats' lane memory (8, 16 or 32).
        A 32-weight block enters it in ``32 / lane_weights`` cycles, so the block-format GEMMs
        take at most ``lane_weights`` weights a cycle: with ``cols`` above 8, a wider word lets
        a decode step (one token, each weight used once) run at ``cols`` weights a cycle. The
        boards use 8: two DP16KDs a column on the 8×16 ECP5 builds (`systolica.rtl.engine`).
        0 (the default) picks 32, or 16 on a device with DRAM: its GEMM_DRAMs' weights come at
        most 8 bytes a cycle (`host.dram_rate`: 14.2 Q4_0 weights, fewer in the other formats),
        so 16 already keeps ahead of the DRAM, with half the lane memory's block RAMs and bus.
    dram_mib : int
        MiB of DRAM behind the device's DRAM controller (reported by IDENTIFY), which WRITE_DRAM
        fills and GEMM_DRAM reads its weights from (`protocol`); 0: none. A power of two. The
        DRAM port moves `protocol.DRAM_WORD_BYTES` a word, and for now the link must move as
        many (no width converter between the two yet).
    row_hold : bool
        Implementation only, for links of at most 4 bytes: result rows wait for the framer in a
        `RowHold` stage, whose wide register is loaded by a flip-flop alone, and the framer
        sends a row's words by selecting them from there instead of loading the whole row into
        its shift register. So no register as wide as a row (512 bits at 16 columns) has an
        enable that the framer's state computes (the ULX3S-85F int8 build's critical path: a
        route of 7-8 ns from that logic to the enables across the die). Off by default: the other
        builds meet their clocks without it.
    framer_state_loads : bool
        Implementation only: the reply framer's shift register (a header, the IDENTIFY payload
        and, without ``row_hold``, a whole result row: 512 bits at 16 columns) takes its next
        value by the framer's state alone: each state that loads it
        loads its source every cycle it is in, instead of when the frame choice's logic says so,
        which then drove every one of its enables (the ULX3S-85F int8 build's critical path with
        the result skid buffer in: an 8 ns route to them). IDENTIFY's reply takes one cycle
        more. Off by default: the other builds meet their clocks without it.
    readout_copies : int
        Implementation only, block formats: how many registered copies the result read-out
        keeps of its two control registers, each copy serving ``cols / readout_copies``
        adjacent columns (a divisor of ``cols``): the array's read-out row select (the scale
        stage's) and the block-mode flag that chooses between the array's sums and the scale
        stage's binary32 results (the engine's). Each register alone fans out to some 500 to
        2,000 LUTs across the 8x16 ECPIX-5 array: the row select's route took 5.4 to 7.6 ns, the
        critical path of every failing seed there, and both were among router2's most
        congested nets. The copies are marked so that Yosys does not merge them back
        (`rtl.scale_stage.KEEP_COPY`). 1 (the default): one register each.
    weight_skid : bool
        Implementation only: int8 weight rows enter the weight banks through a skid buffer, so
        that neither the decoder's handshake nor the banks' next state waits on the other (the
        ULX3S-85F's critical path without it). False saves its two rows of flip-flops (the
        iCEBreaker, whose part is full).
    """

    # The default is the simulated board's: two rows (a decode step uses one), 16 columns (a decode
    # step runs at `cols` weights a cycle), 32-weight lane words (16 with DRAM) and a 16-byte link (so a Q4_1
    # or Q8_0 decode step is not held back by its intake), one scale unit for the 16 columns, an
    # activation buffer of 256 KB (a prefill of up to 170 tokens at K = 1536 in one LOAD_A) and
    # a 64 KB receive buffer (the credit the host may have in flight).
    rows: int = 2
    cols: int = 16
    link_bytes: int = 16
    act_depth: int = 131072
    max_k: int = 2048
    rx_fifo_words: int = 4096

    # Fixed by this version of the datapath; reported by IDENTIFY so a host can check them.
    a_width: int = 8
    w_width: int = 8
    acc_width: int = 32

    formats: tuple = ("int8", "q8_0", "q4_0", "q4_1")
    abort_cycles: int = 1 << 16
    dram_mib: int = 0

    multiplier: str = dataclasses.field(default="infer", compare=False)
    buffer_piece_depth: int = dataclasses.field(default=0, compare=False)
    scale_share: int = dataclasses.field(default=0, compare=False)
    scale_multiplier: str = dataclasses.field(default="infer", compare=False)
    lane_weights: int = dataclasses.field(default=0, compare=False)
    readout_copies: int = dataclasses.field(default=1, compare=False)
    weight_skid: bool = dataclasses.field(default=True, compare=False)
    row_hold: bool = dataclasses.field(default=False, compare=False)
    framer_state_loads: bool = dataclasses.field(default=False, compare=False)

    def __post_init__(self):
        _check_positive("rows", self.rows, maximum=64)
        _check_positive("cols", self.cols, maximum=64)
        _check_positive("link_bytes", self.link_bytes, power_of_two=True,
                        maximum=MAX_LINK_BYTES)
        _check_positive("act_depth", self.act_depth, maximum=1 << 24)
        # int8·int8 sums of up to 2**17 terms fit int32 exactly.
        _check_positive("max_k", self.max_k, maximum=(1 << 17) - 1)
        _check_positive("rx_fifo_words", self.rx_fifo_words)
        if self.abort_cycles != 0:        # 0: no idle abort (a part too full for it)
            _check_positive("abort_cycles", self.abort_cycles, maximum=(1 << 32) - 1)
        if self.dram_mib:
            _check_positive("dram_mib", self.dram_mib, power_of_two=True, maximum=2048)
            if self.link_bytes != DRAM_WORD_BYTES:
                raise ValueError(f"dram_mib needs link_bytes = {DRAM_WORD_BYTES} (the DRAM's word; "
                                 f"no width converter yet), not {self.link_bytes}")
        if self.multiplier not in MULTIPLIERS:
            raise ValueError(f"multiplier must be one of {MULTIPLIERS}, not {self.multiplier!r}")
        if self.scale_multiplier not in SCALE_MULTIPLIERS:
            raise ValueError(f"scale_multiplier must be one of {SCALE_MULTIPLIERS}, not "
                             f"{self.scale_multiplier!r}")
        if self.scale_share == 0 and isinstance(self.cols, int) and isinstance(self.rows, int):
            share = max(s for s in range(1, self.cols + 1)
                        if self.cols % s == 0 and (s == 1 or self.rows * s <= 32))
            object.__setattr__(self, "scale_share", share)
        _check_positive("scale_share", self.scale_share)
        _check_positive("readout_copies", self.readout_copies)
        if self.cols % self.readout_copies:
            raise ValueError(f"readout_copies must divide cols={self.cols}, not "
                             f"{self.readout_copies}")
        if self.lane_weights == 0:
            object.__setattr__(self, "lane_weights", 16 if self.dram_mib else 32)
        if self.lane_weights not in (8, 16, 32):
            raise ValueError(f"lane_weights must be 8, 16 or 32, not {self.lane_weights!r}")
        for name in ("weight_skid", "row_hold", "framer_state_loads"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, not {getattr(self, name)!r}")
        if self.row_hold and self.link_bytes > 4:
            raise ValueError(f"row_hold is for links of at most 4 bytes (a row word a beat), "
                             f"not link_bytes={self.link_bytes}")
        p = self.buffer_piece_depth
        if not isinstance(p, int) or p < 0 or p & (p - 1):
            raise ValueError(f"buffer_piece_depth must be 0 or a power of two, not {p!r}")
        if (self.a_width, self.w_width, self.acc_width) != (8, 8, 32):
            raise ValueError("only int8 x int8 -> int32 is implemented "
                             f"(a_width=8, w_width=8, acc_width=32), not {self!r}")
        if not isinstance(self.formats, tuple) or "int8" not in self.formats or any(
                f not in FORMAT_NAMES for f in self.formats):
            raise ValueError(f"formats must be a tuple of {FORMAT_NAMES} including 'int8', not "
                             f"{self.formats!r}")
        if self.block_formats:
            if self.rows + self.cols > 33:
                raise ValueError(f"block formats need rows + cols <= 33 (a block's results "
                                 f"leave the array within 32 cycles), not {self.rows}+{self.cols}")
            if self.cols > 24:
                raise ValueError(f"block formats need cols <= 24 (a block's scales are taken "
                                 f"when it has reached the array's row 0, before the next "
                                 f"block's are read), not {self.cols}")
            if self.cols % self.scale_share:
                raise ValueError(f"scale_share must divide cols ({self.cols}), not "
                                 f"{self.scale_share}")
            for name in ("act_depth", "max_k"):
                if getattr(self, name) % 32:
                    raise ValueError(f"{name} must be a multiple of 32 with block formats, not "
                                     f"{getattr(self, name)}")
        if self.rx_bytes < 64:
            raise ValueError(f"rx_fifo_words * link_bytes must be at least 64 bytes (IDENTIFY is "
                             f"sent unacknowledged), not {self.rx_bytes}")

    @property
    def block_formats(self):
        """The GGUF block formats carried, as `protocol.Format` codes."""
        return tuple(Format[f.upper()] for f in self.formats if f != "int8")

    @property
    def block_period(self):
        """Cycles from the end of one 32-block of K to the next in a block-format GEMM: 32 while
        each scale unit's ``rows * scale_share`` dot products of a block fit in 32 cycles, else
        those plus 4 (the unit's queues then empty before the next block's results arrive)."""
        items = self.rows * self.scale_share
        return 32 if items <= 32 else items + 4

    @property
    def format_mask(self):
        """Bit f set for every `protocol.Format` code f the device carries (IDENTIFY)."""
        return sum(1 << Format[f.upper()] for f in self.formats)

    @property
    def features(self):
        """`protocol.Feature`s of this device (IDENTIFY): on a device with DRAM and a block
        format, argmax, and pair sums if its number of rows is even."""
        if not (self.dram_mib and self.block_formats):
            return Feature(0)
        return Feature.ARGMAX | (Feature.PAIR_SUM if self.rows % 2 == 0 else Feature(0))

    @property
    def rx_bytes(self):
        """Receive buffer the device advertises: the host never has more bytes in flight."""
        return self.rx_fifo_words * self.link_bytes

    @property
    def acc_bits(self):
        """Accumulator bits inside the array: enough for K = max_k sums of int8·int8 (at most
        16384 in magnitude), sign included; results still leave as int32."""
        return (16384 * self.max_k).bit_length() + 1

    def identify_payload(self):
        """The IDENTIFY reply payload (32 bytes) describing this configuration."""
        return struct.pack(_IDENTIFY_FORMAT, PROTOCOL_VERSION, self.rows, self.cols,
                           self.a_width, self.w_width, self.acc_width, self.link_bytes,
                           self.format_mask, self.features, self.act_depth, self.max_k, self.rx_bytes,
                           self.dram_mib, self.abort_cycles)

    @classmethod
    def from_identify(cls, payload):
        """Parse an IDENTIFY payload back into a `Config` (checks the protocol version)."""
        if len(payload) != struct.calcsize(_IDENTIFY_FORMAT):
            raise ValueError(f"IDENTIFY payload must be {struct.calcsize(_IDENTIFY_FORMAT)} "
                             f"bytes, not {len(payload)}")
        (version, rows, cols, a_width, w_width, acc_width, link_bytes, mask, features,
         act_depth, max_k, rx_bytes, dram_mib, abort_cycles) = struct.unpack(_IDENTIFY_FORMAT,
                                                                             payload)
        if version != PROTOCOL_VERSION:
            raise ValueError(f"device speaks protocol version {version}, "
                             f"host speaks {PROTOCOL_VERSION}")
        config = cls(rows=rows, cols=cols, link_bytes=link_bytes, act_depth=act_depth,
                     max_k=max_k, rx_fifo_words=rx_bytes // link_bytes, a_width=a_width,
                     w_width=w_width, acc_width=acc_width, abort_cycles=abort_cycles,
                     dram_mib=dram_mib,
                     formats=tuple(f for f in FORMAT_NAMES if mask >> Format[f.upper()] & 1))
        if features != config.features:
            # A device built before a feature (or a model of one) must not be sent it.
            raise ValueError(f"device reports features 0x{features:04x}, but a device of its "
                             f"configuration has 0x{int(config.features):04x}: rebuild it")
        return config

    def label(self):
        """A short name for build directories and test ids."""
        mul = "" if self.multiplier == "infer" else f"-{self.multiplier}"
        if self.buffer_piece_depth:
            mul += f"-p{self.buffer_piece_depth}"
        if self.block_formats and (self.scale_share, self.scale_multiplier) != (1, "infer"):
            mul += f"-s{self.scale_share}{self.scale_multiplier}"
        if self.block_formats and self.lane_weights != 32:
            mul += f"-w{self.lane_weights}"
        if self.block_formats and self.readout_copies != 1:
            mul += f"-c{self.readout_copies}"
        if not self.weight_skid:
            mul += "-ns"
        if self.row_hold:
            mul += "-rh"
        if self.framer_state_loads:
            mul += "-fs"
        fmt = "" if self.formats == FORMAT_NAMES else "-" + "+".join(self.formats)
        if self.abort_cycles != Config.abort_cycles:
            fmt += f"-t{self.abort_cycles}"
        if self.dram_mib:
            fmt += f"-d{self.dram_mib}"
        return (f"r{self.rows}c{self.cols}l{self.link_bytes}a{self.act_depth}"
                f"k{self.max_k}f{self.rx_fifo_words}{mul}{fmt}")
