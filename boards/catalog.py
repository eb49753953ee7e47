"""The boards systolica builds for, and the ones it does not (yet), with the reason."""

from systolica.config import FORMAT_NAMES, Config

from .board import Board
from .dram_top import DramBoard

__all__ = ["BOARDS", "UNSUPPORTED", "board_by_name"]

# What each board is and why it is built the way it is; what was tried on the way (clocks per
# seed, earlier netlists) is in reports/build_history.md, the latest figures in reports/boards.md.
#
# ECP5: each PE's product is in a MULT18X18D with its input and output registers
# (multiplier="registered"), the weight and activation buffers are cut into 2048-word pieces
# (buffer_piece_depth), and every block RAM read on a critical path is a DP16KD with its own
# output register (rtl/block_ram.py: Yosys only infers them without it, and a DP16KD's data then
# takes 5.8 ns from the clock): the buffer pieces, the block formats' lane memory and the
# receive FIFO (rtl/block_ram_fifo.py). 3 Mbaud is divisor 33 at 100 MHz (1.0 % error).
#
# Block formats on ECP5: the ULX3S-25F carries every format with one scale unit in logic for
# its 6 columns (24 dot products a block). The 8x16 boards carry them with one unit in logic
# for all 16 columns (`scale_share=16, scale_multiplier="lut"`: 128 dot products a block, so a
# block GEMM runs one 32-block per 132 cycles, `Config.block_period`); that netlist needs
# nextpnr's static placer and router2 to route, and on the ULX3S-85F's speed grade 6 only at
# 60 MHz, so that board has two entries: int8 at 100 MHz and every format at 60 MHz.
INT8_FORMATS = ("int8",)

# USB-UARTs (vendor, product, interface): an FTDI FT2232H's second channel (its first is JTAG),
# an FTDI FT231X, and the Tang Nano 9K's BL702, whose firmware presents an FT2232-style pair of
# channels with the UART on the second (not checked on hardware here).
FT2232_UART = (0x0403, 0x6010, 1)
FT231X_UART = (0x0403, 0x6015, None)


def _accelerator(**fields):
    """A board's `Config`: one byte a cycle behind its UART and 8-weight lane words (a UART
    feeds far fewer weights a cycle than that); unless the board says otherwise, int8 only, one
    scale unit a column and a 512-word receive FIFO."""
    return Config(**{"link_bytes": 1, "formats": INT8_FORMATS, "rx_fifo_words": 512,
                     "scale_share": 1, "lane_weights": 8, **fields})


BOARDS = {b.name: b for b in [
    Board(
        name="icebreaker", loader="icebreaker", usb_uart=FT2232_UART,
        description="1BitSquared iCEBreaker (iCE40UP5K, FT2232H UART)",
        platform="amaranth_boards.icebreaker:ICEBreakerPlatform", family="ice40",
        clk_freq=30e6, baudrate=3_000_000, dsp_available=8,
        # No weight skid buffer either: its 153 cells made placement fail (242e71c).
        config=_accelerator(rows=4, cols=4, act_depth=1024, max_k=512, multiplier="pairs",
                            weight_skid=False),
        # No `synth_ice40 -dsp`: every multiplier is an SB_MAC16 instance in its 8x8 mode
        # (`rtl/multiplier.py` PairMultiplier), and -dsp's ice40_dsp pass rewrote those into
        # unregistered 16x16 products, which gave wrong GEMMs (found by the gate-level test,
        # tests/test_gate_level.py; so did every iCEBreaker build since 165d54c).
        leds=(("led_g", 0), ("led_r", 0)),
        # The part is nearly full: the placement decides whether 30 MHz is met (seed search in
        # reports/build_history.md). With protocol v2's header window and CRCs it is at 94 %,
        # and the idle abort's 62 more cells made it fail placement: it has none, and the host's
        # resync completes a frame cut off on the way with zero bytes (host/frame_fill.py).
        nextpnr_opts="--seed 3", idle_abort=False),
    Board(
        name="ulx3s-85f", loader="ulx3s", usb_uart=FT231X_UART,
        description="Radiona ULX3S 85F (ECP5 LFE5U-85F, FT231X UART)",
        platform="amaranth_boards.ulx3s:ULX3S_85F_Platform", family="ecp5",
        clk_freq=100e6, baudrate=3_000_000, dsp_available=156,
        config=_accelerator(rows=8, cols=16, act_depth=8192, max_k=2048, rx_fifo_words=2048,
                            multiplier="registered-fabric", buffer_piece_depth=2048,
                            formats=INT8_FORMATS, scale_share=16, scale_multiplier="lut",
                            row_hold=True, framer_state_loads=True),
        leds=(("led", 0), ("led", 1), ("led", 2)), env=(("OPENFPGALOADER", "true"),),
        # The static placer with router2 and timing-driven rip-up: HeAP with router1 no longer
        # converged on this netlist, router2 without rip-up left it at 76-79 MHz.
        nextpnr_opts="--placer static --router router2 --tmg-ripup --seed 1"),
    # The same board with every format, at 60 MHz (its speed grade 6 placed the 8x16
    # every-format netlist at 63-67 MHz). 4 rows, not the ECPIX-5's 8: the 8x16 netlist stopped
    # routing on this part's pinout (router2 stalled with 480 and more overused wires on five
    # runs at 82e4d8d, reports/build_history.md Session 24); half the array's DSPs and product
    # registers routes in minutes. Decode uses one row (its two activation terms) and is bound
    # by the UART; the block period halves (one scale unit for 4 x 16 dot products, not 8 x 16),
    # so block GEMMs run faster, and only prefill's rows pass in twice as many row blocks.
    # `row_hold` and `framer_state_loads` (the ULX3S-85F int8's framer): the 4x16 build's
    # critical path was the framer's state to the enables of its 512-bit row register.
    # At 80d8d05 seed 6 stalled in router2, seed 1 routed at 60.37 MHz (a 15.3 ns route from
    # the weight banks' piece select into the lane memory) and seed 2 at 83.27 MHz, after 27
    # router2 iterations (Session 28). 3 Mbaud is divisor 20 exactly.
    Board(
        name="ulx3s-85f-gguf", loader="ulx3s", usb_uart=FT231X_UART,
        description="Radiona ULX3S 85F with every GGUF format, 60 MHz "
                                           "(ECP5 LFE5U-85F, FT231X UART)",
        platform="amaranth_boards.ulx3s:ULX3S_85F_Platform", family="ecp5",
        clk_freq=60e6, baudrate=3_000_000, dsp_available=156,
        config=_accelerator(rows=4, cols=16, act_depth=8192, max_k=2048, rx_fifo_words=2048,
                            multiplier="registered", buffer_piece_depth=2048,
                            formats=FORMAT_NAMES, scale_share=16, scale_multiplier="lut",
                            row_hold=True, framer_state_loads=True),
        leds=(("led", 0), ("led", 1), ("led", 2)), env=(("OPENFPGALOADER", "true"),),
        nextpnr_opts="--placer static --router router2 --tmg-ripup --seed 2"),
    Board(
        name="ulx3s-25f", loader="ulx3s", usb_uart=FT231X_UART,
        description="Radiona ULX3S 25F (ECP5 LFE5U-25F, FT231X UART)",
        platform="amaranth_boards.ulx3s:ULX3S_25F_Platform", family="ecp5",
        clk_freq=100e6, baudrate=3_000_000, dsp_available=28,
        config=_accelerator(rows=4, cols=6, act_depth=4096, max_k=1536, rx_fifo_words=2048,
                            multiplier="registered", buffer_piece_depth=2048,
                            formats=FORMAT_NAMES, scale_share=6, scale_multiplier="lut"),
        leds=(("led", 0), ("led", 1), ("led", 2)), env=(("OPENFPGALOADER", "true"),),
        nextpnr_opts="--seed 3"),
    Board(
        name="ecpix5-85f", loader="ecpix5", usb_uart=FT2232_UART,
        description="LambdaConcept ECPIX-5 85F (ECP5-5G LFE5UM5G-85F, "
                                       "FT2232H UART)",
        platform="amaranth_boards.ecpix5:ECPIX585Platform", family="ecp5",
        clk_freq=100e6, baudrate=3_000_000, dsp_available=156,
        config=_accelerator(rows=8, cols=16, act_depth=8192, max_k=2048, rx_fifo_words=2048,
                            multiplier="registered", buffer_piece_depth=2048,
                            formats=FORMAT_NAMES, scale_share=16, scale_multiplier="lut",
                            readout_copies=16, row_hold=True, framer_state_loads=True),
        leds=(("rgb_led", 0, "g"), ("rgb_led", 1, "g"), ("rgb_led", 2, "r")),
        env=(("OPENFPGALOADER", "true"),),
        # Every format: the read-out's row select and block-mode flag in a copy a column
        # (`readout_copies`: one register of each had fanned out across the array) and the int8
        # 85F's framer (`row_hold`, `framer_state_loads`: the framer's and the result skid's
        # control nets were among router2's most congested). nextpnr's HeAP placer, router2
        # with timing-driven rip-up: at 80d8d05 (the unpacker's group end, the drain's last row
        # and the row picker's column select registered) seeds 1, 2 and 3 all route and meet
        # 100 MHz (103.25, 102.08, 102.49), where at d67f83f the static placer's seeds 1-3 did
        # not converge. `--placer-heap-beta 0.7` made no difference (0.7 and 0.8 wrote the
        # same bitstream; reports/build_history.md, Sessions 27 and 28).
        nextpnr_opts="--placer heap --placer-heap-beta 0.7 --router router2 --tmg-ripup "
                     "--seed 2"),
    # The ECPIX-5 with its DDR3 (512 MiB): LiteDRAM's controller (ECP5DDRPHY) on the ddr3 pins,
    # the accelerator in the controller's 75 MHz system clock (one domain; the core's PLL makes
    # it and the 150 MHz DRAM clock from clk100), so a quarter less peak than ecpix5-85f's
    # 100 MHz. The UART's bytes are packed into 16-byte link words (the DRAM word); 3 Mbaud is
    # divisor 25 exactly; the receive FIFO holds 2 KiB as ecpix5-85f's does. The init sequence
    # sets each byte lane's read bitslip and delay to fixed values instead of LiteX's search:
    # these are what LiteX's BIOS chose on one ECPIX-5 (litex issue 925: lane 0 bitslip 0 delay
    # 4, lane 1 bitslip 0 delay 3), not measured on a board here (docs/litedram-notes.md s. 7).
    # The array is the simulated DRAM board's (`Config(dram_mib=512)`): 2 rows (a decode step
    # uses one), 16 columns, 16-weight lane words and one scale unit for the 16 columns, so the
    # device cycles `systolica generate --dram` measures are this board's too. An 8x16 array
    # (as on ecpix5-85f) adds nothing to decode, whose weights pass at `cols` a cycle, and with
    # its 128 DSPs router2 did not route it (reports/build_history.md, Session 21). The lane
    # words were 32 weights (8 DP16KDs a column, 188 of the part's 208 block RAMs with the
    # 8192-word activation buffer) and that netlist did not route (Session 22); the DRAM gives
    # at most 14.2 weights a cycle (Q4_0), so 16-weight words keep ahead of it at half the lane
    # memory and its buses.
    DramBoard(
        name="ecpix5-85f-dram", loader="ecpix5", usb_uart=FT2232_UART,
        description="LambdaConcept ECPIX-5 85F with weights in its DDR3, 75 MHz "
                    "(ECP5-5G LFE5UM5G-85F, FT2232H UART)",
        platform="amaranth_boards.ecpix5:ECPIX585Platform", family="ecp5",
        clk_freq=75e6, baudrate=3_000_000, dsp_available=156,
        config=_accelerator(rows=2, cols=16, act_depth=8192, max_k=2048, link_bytes=16,
                            rx_fifo_words=128, dram_mib=512, multiplier="registered",
                            buffer_piece_depth=2048, formats=FORMAT_NAMES, scale_share=16,
                            scale_multiplier="lut", lane_weights=16),
        leds=(("rgb_led", 0, "g"), ("rgb_led", 1, "g"), ("rgb_led", 2, "r")),
        env=(("OPENFPGALOADER", "true"),),
        # Congestion, not timing, decides whether it routes (placement estimates 83-88 MHz at
        # 75): at 80d8d05 the static placer's seed 1 routed (80.68 MHz, after 92 router2
        # iterations); seed 6 had stalled at d67f83f, and HeAP (seed 1) stalled at 5,000
        # overused wires, where it helps the ecpix5-85f (reports/build_history.md, Session 28).
        nextpnr_opts="--placer static --router router2 --tmg-ripup --seed 1",
        dram_core="ecpix5", read_leveling=((0, 4), (0, 3))),
    # Gowin: 27 MHz crystal, rPLL at 54 MHz (×2); every PE an inferred 8x8 product in a MULT9X9.
    # Placement bounds the array: 6x4 is the largest that placed (reports/build_history.md).
    # 3 Mbaud is divisor 18 exactly.
    Board(
        name="tang-nano-9k", loader="tangnano9k", usb_uart=FT2232_UART,
        description="Sipeed Tang Nano 9K (Gowin GW1NR-9C, BL702 USB-UART)",
        platform="amaranth_boards.tang_nano_9k:TangNano9kPlatform", family="gowin",
        clk_freq=54e6, baudrate=3_000_000, dsp_available=40,
        config=_accelerator(rows=6, cols=4, act_depth=1024, max_k=512, multiplier="infer"),
        leds=(("led", 0), ("led", 1), ("led", 2))),
]}

UNSUPPORTED = {
    "orangecrab": "no USB-serial UART: its USB goes straight to the FPGA (would need a USB "
                  "device core)",
    "colorlight-5a-75b": "no USB-serial chip; the 'uart' pins are an LED and a button",
}


def board_by_name(name):
    try:
        return BOARDS[name]
    except KeyError:
        reason = UNSUPPORTED.get(name)
        if reason:
            raise ValueError(f"board {name!r} is not supported: {reason}") from None
        raise ValueError(f"unknown board {name!r}; supported: {', '.join(BOARDS)}") from None
