"""Boards: PLL arithmetic, the catalog, the iCEBreaker bitstream (built with the PyPI toolchain,
checked against its targets), and the simulated board at the iCEBreaker's and the ULX3S-85F's
configurations behind a serial link."""

import dataclasses
import os

import numpy as np
import pytest
from block_data import random_activations, random_blocks
from pty_gemm import gemm_over_pty

from systolica.boards.catalog import BOARDS, board_by_name
from systolica.boards.dram_top import DramBoard
from systolica.boards.pll import ECP5PLL, ICE40PLL, GowinPLL, pll_for
from systolica.boards.report import render_markdown
from systolica.boards.top import BoardTop
from systolica.config import FORMAT_NAMES, Config
from systolica.host.block_formats import FORMATS, block_gemm_reference
from systolica.host.driver import Driver
from systolica.host.link import SerialLink
from systolica.rtl.uart import baud_divisor
from systolica.sim.pty_board import PtyBoard

UART_BOARDS = [name for name, board in BOARDS.items() if not isinstance(board, DramBoard)]


@pytest.mark.parametrize("name", UART_BOARDS)
def test_board_clock_and_uart_are_reachable(name):
    board = BOARDS[name]
    platform = board.make_platform()
    f_in = platform.resources[platform.default_clk, 0].clock.frequency
    pll = {"ice40": ICE40PLL, "ecp5": ECP5PLL,
           "gowin": GowinPLL}[board.family].search(f_in, board.clk_freq)
    assert pll.f_out == pytest.approx(board.clk_freq, rel=1e-3)
    if board.family == "ice40":
        assert 533e6 <= pll.f_vco <= 1066e6 and 10e6 <= pll.f_pfd <= 133e6
    elif board.family == "gowin":
        assert 400e6 <= pll.f_vco <= 1200e6 and 3e6 <= pll.f_pfd <= 400e6
    else:
        assert 400e6 <= pll.f_vco <= 800e6
    _, error = baud_divisor(pll.f_out, board.baudrate)
    assert error < 0.02
    assert board.config.link_bytes == 1


@pytest.mark.parametrize(("f_out", "expect"), [
    (81e6, (0, 2, 8)),          # 27 MHz × 3, VCO 648 MHz
    (54e6, (0, 1, 16)),         # × 2, VCO 864 MHz
    (100e6, None), (33.333e6, None), (12e6, None), (594e6, None), (3.4e6, None),
])
def test_gowin_pll_settings_are_in_range(f_out, expect):
    """The rPLL search from the Tang Nano 9K's 27 MHz crystal: every setting inside GW1N-9C's
    documented ranges (the ones gowin_pack enforces), the output within 1 % of the target."""
    pll = pll_for("gowin", 27e6, f_out)
    assert 0 <= pll.idiv_sel <= 63 and 0 <= pll.fbdiv_sel <= 63
    assert pll.odiv_sel in (2, 4, 8, 16, 32, 48, 64, 80, 96, 112, 128)
    assert 3e6 <= pll.f_pfd <= 400e6
    assert 400e6 <= pll.f_vco <= 1200e6
    assert 3.125e6 < pll.f_out <= 600e6
    assert pll.f_out == pytest.approx(f_out, rel=0.01)
    assert pll.f_out == pytest.approx(27e6 * (pll.fbdiv_sel + 1) / (pll.idiv_sel + 1))
    if expect is not None:
        assert (pll.idiv_sel, pll.fbdiv_sel, pll.odiv_sel) == expect


@pytest.mark.parametrize("f_out", [700e6, 3e6, 1e6])
def test_gowin_pll_out_of_reach_says_so(f_out):
    with pytest.raises(ValueError, match=r"no gowin PLL setting makes .* MHz from 27 MHz"):
        pll_for("gowin", 27e6, f_out)


def test_gowin_board_builds_with_nextpnr_himbaechel():
    """The Tang Nano 9K's platform runs Amaranth's Apicula flow with nextpnr-himbaechel and an SDC
    file that constrains the PLL's clock net by name."""
    board = BOARDS["tang-nano-9k"]
    top = BoardTop(board)
    files = board.make_platform().prepare(top, name="systolica").files
    script = files["build_systolica.sh"]
    assert "NEXTPNR_HIMBAECHEL" in script and "--vopt family=GW1N-9C" in script
    assert "--sdc systolica.sdc" in script and "GOWIN_PACK" in script
    # 54 MHz from the 27 MHz crystal: an 18.52 ns period on the PLL's output net, and 3 Mbaud
    # is divisor 18 exactly.
    assert board.clk_freq == 54e6
    assert 'create_clock -period 18.5185185185' in files["systolica.sdc"]
    assert '[get_nets "pll_clk"]' in files["systolica.sdc"]
    assert top.divisor == 18 and top.baud_error == 0


@pytest.mark.parametrize(("name", "match"), [("orangecrab", "no USB-serial"),
                                             ("nonesuch", "unknown board")])
def test_unsupported_boards_say_why(name, match):
    with pytest.raises(ValueError, match=match):
        board_by_name(name)


@pytest.fixture(scope="module")
def icebreaker_build():
    from systolica.boards.build import build_board
    return build_board(BOARDS["icebreaker"])


def test_icebreaker_bitstream_meets_its_targets(icebreaker_build):
    r = icebreaker_build
    assert r["ok"], r.get("error")
    print(f"\nicebreaker: Fmax {r['fmax_mhz']:.2f} MHz at a {r['clock_mhz']:g} MHz clock, "
          f"{r['macs']} MACs, logic {r['logic']}, DSP {r['dsp']}, BRAM {r['bram']}, "
          f"{r['luts_per_pe']:.1f} LUTs/PE")
    assert r["clock_mhz"] >= 30
    assert r["fmax_mhz"] >= r["clock_mhz"]
    assert r["macs"] >= 16
    assert r["dsp"][0] == r["dsp"][1] == 8          # every SB_MAC16 holds two 8x8 multipliers
    assert r["dsp_changes"] == []                   # ... as the RTL instantiated them
    assert r["bitstream"].endswith(".bin")
    table = render_markdown([r])
    assert "| icebreaker | iCE40UP5K | 4x4 | 16 |" in table


def test_simulated_icebreaker_runs_a_gemm_over_serial():
    """What the board runs is what was tested: its configuration (1-byte link, 4x4 array, its
    buffers), simulated, behind a pseudo-terminal opened by the serial Link."""
    gemm_over_pty(BOARDS["icebreaker"].config, 6, 40, 9, seed=3)


# The ECPIX-5's 8x16 every-format build and the ULX3S-85F's 4x16 are the largest simulator
# builds here: they run with `make board-sims` (SYSTOLICA_ALL_BOARDS=1), the ULX3S-25F's in
# `make test`.
ALL_BOARDS = os.environ.get("SYSTOLICA_ALL_BOARDS", "0") not in ("", "0")
LARGE = pytest.mark.skipif(not ALL_BOARDS, reason="a 16-column every-format simulator build: "
                                                  "make board-sims")


@pytest.mark.parametrize("name", ["ulx3s-25f", pytest.param("ecpix5-85f", marks=LARGE),
                                  pytest.param("ulx3s-85f-gguf", marks=LARGE)])
def test_simulated_ecp5_boards_run_block_gemms_over_serial(name):
    """The ECP5 bitstreams that carry every format, simulated behind the serial link, buffers in
    registered pieces: the ULX3S-25F's 4×6 array, one scale unit in logic for its 6 columns;
    the ECPIX-5's 8×16, one unit for all 16 columns: 128 dot products a block, so its block
    GEMMs run one block per 132 cycles; its array is the ULX3S-85F int8 bitstream's, without
    the block formats; the ULX3S-85F's every-format 4×16 (ulx3s-85f-gguf, 60 MHz), one block
    per 68 cycles. Both of those send result rows from a `RowHold` (`Config.row_hold`), and the
    ECPIX-5 keeps its read-out's control registers in a copy a column
    (`Config.readout_copies`). Q4_1 and Q8_0 GEMMs bit-exact with the block model, an int8 GEMM
    exact."""
    assert BOARDS[name].config.formats == FORMAT_NAMES
    cfg = BOARDS[name].config
    if name != "ulx3s-25f":
        same = dict(abort_cycles=cfg.abort_cycles)      # (a quarter second of each clock)
        assert dataclasses.replace(BOARDS["ulx3s-85f-gguf"].config, rows=cfg.rows, **same) == cfg
        assert dataclasses.replace(BOARDS["ulx3s-85f"].config, formats=FORMAT_NAMES,
                                   rows=cfg.rows, **same) == cfg
    assert cfg.row_hold == (name != "ulx3s-25f")
    assert cfg.readout_copies == (16 if name == "ecpix5-85f" else 1)
    assert cfg.buffer_piece_depth == 2048
    share = {"ulx3s-25f": 6, "ecpix5-85f": 16, "ulx3s-85f-gguf": 16}[name]
    assert (cfg.scale_share, cfg.scale_multiplier) == (share, "lut")
    assert cfg.block_period == max(32, cfg.rows * share + 4)
    rng = np.random.default_rng(85)
    with PtyBoard(cfg) as board:
        drv = Driver(SerialLink(board.port, 3_000_000), timeout=60)
        try:
            assert drv.config == cfg
            for fmt, (n, k, m) in (("q4_1", (9, 96, 18)), ("q8_0", (3, 64, 5))):
                xq, xd = random_activations(rng, n, k)
                raw = random_blocks(FORMATS[fmt], m, k // 32, rng)
                got = drv.gemm_blocks(xq, xd, raw, fmt)
                assert np.array_equal(got.view(np.uint32), block_gemm_reference(xq, xd, raw, fmt))
            a = rng.integers(-128, 128, (10, 40), dtype=np.int8)
            w = rng.integers(-128, 128, (40, 17), dtype=np.int8)
            np.testing.assert_array_equal(drv.gemm(a, w), a.astype(np.int64) @ w)
        finally:
            drv.close()


def test_report_prints_targets_and_verdicts():
    from systolica.boards.report import render_markdown

    ecp5 = dict(board="ulx3s-85f", device="LFE5U-85F", rows=8, cols=16, macs=128, clock_mhz=80.0,
                fmax_mhz=87.5, ok=True, logic=[13000, 83640], flip_flops=12000, dsp=[128, 156],
                bram=[63, 208], luts_per_pe=45.0, baudrate=3_000_000)
    ice = dict(ecp5, board="icebreaker", device="iCE40UP5K", rows=4, cols=4, macs=16,
               clock_mhz=30.0, fmax_mhz=31.3)
    text = render_markdown([ice, ecp5])
    assert "| icebreaker | minimum: ≥ 16 MACs at ≥ 30 MHz | 16 × 30 (Fmax 31.3) | yes |" in text
    assert "| ulx3s-85f | minimum: ≥ 128 MACs at ≥ 100 MHz | 128 × 80 (Fmax 87.5) | no |" in text
    assert "| ulx3s-85f | aim: ≤ 40 LUTs per DSP-backed PE | 45.0 | no |" in text
    # Link-bound tokens/s per format carried: 300 kB/s over 134.48 M weights a token, at 1 byte
    # per weight for int8 and 20/32 for Q4_1 (the default: int8 only).
    assert "| int8 0.0022 |" in text
    text = render_markdown([dict(ecp5, formats=["int8", "q4_1"])])
    assert "| int8 0.0022, q4_1 0.0036 |" in text


def test_report_takes_a_gowin_result():
    """A Gowin build's figures in the boards table (the Tang Nano has no issue target)."""
    tang = dict(board="tang-nano-9k", device="GW1NR-9C", rows=8, cols=4, macs=32, clock_mhz=81.0,
                fmax_mhz=83.9, ok=True, logic=[5059, 8640], flip_flops=4282, dsp=[32, 40],
                bram=[7, 26], luts_per_pe=20.0, baudrate=3_000_000, formats=["int8"])
    text = render_markdown([tang])
    assert "| tang-nano-9k | GW1NR-9C | 8x4 | 32 | 81 | 83.9 ✓ | 5059 / 8640 | 4282 |" in text
    assert "| tang-nano-9k | minimum" not in text


@pytest.mark.parametrize(("extra", "verdict"), [({}, "build failed"),
                                                ({"stalled": "router2 stalled: ..."},
                                                 "did not route")])
def test_report_says_how_a_build_failed(extra, verdict):
    failed = dict(board="ecpix5-85f-dram", device="LFE5UM5G-85F", rows=2, cols=16, macs=32,
                  clock_mhz=75.0, ok=False, commit="abc1234", build_seconds=3000, **extra)
    assert f"| 75 | {verdict} | |" in render_markdown([failed])


@pytest.mark.parametrize(("args", "message"), [
    (["bitstream", "--board", "icebreaker", "--rows", "0"], "rows must be a positive integer"),
    (["bitstream", "--board", "icebreaker", "--cols", "65"], "cols must be at most 64"),
    (["bitstream", "--board", "nonesuch"], "unknown board 'nonesuch'"),
    (["bitstream", "--board", "orangecrab"], "no USB-serial UART"),
    (["program", "--board", "nonesuch", "--dry-run"], "unknown board 'nonesuch'"),
], ids=["rows-0", "cols-65", "unknown-board", "unsupported-board", "program-unknown"])
def test_board_commands_refuse_bad_arguments_before_touching_anything(args, message, capsys,
                                                                      tmp_path):
    """A one-line error naming the argument, a non-zero exit, no traceback, no build folder."""
    from systolica import cli

    build_dir = tmp_path / "build"
    if args[0] == "bitstream":
        args = [*args, "--build-dir", str(build_dir)]
    assert cli.main(args) != 0
    _, err = capsys.readouterr()
    assert message in err and "Traceback" not in err and err.count("\n") == 1, err
    assert not build_dir.exists()


@pytest.fixture(scope="module")
def ecpix5_dram_core():
    """The ECPIX-5's LiteDRAM core (ECP5DDRPHY), generated from PyPI's litedram (about 2 s,
    then cached)."""
    from systolica.sim import dram_core

    return dram_core.core("ecpix5")


def test_ecpix5_dram_core_has_the_ddr3_pins_and_the_phy_that_levels_reads(ecpix5_dram_core):
    """The hardware core: its own PLL's clock ports and the DDR3 pins (DQ and DQS declared
    inputs: their tristates are TRELLIS_IO cells inside), the ECP5 PHY's leveling registers, and
    LiteDRAM's DDR3 init for it (MR0: CL 6, BL8; the DFI handed over, then init_done)."""
    info = ecpix5_dram_core.info
    ports = info["ports"]
    assert ports["clk"] == ["input", 1] and ports["user_clk"] == ["output", 1]
    assert ports["ddram_dq"] == ["input", 16] and ports["ddram_dqs_p"] == ["input", 2]
    assert ports["ddram_a"] == ["output", 15] and ports["user_port_native_0_cmd_addr"][1] == 25
    assert info["read_leveling"] == {"modules": 2, "bitslips": 4, "delays": 8}
    assert info["csr"]["ddrphy_dly_sel"] == 0x800 and info["csr"]["sdram_dfii_control"] == 0x1000
    assert info["timing"]["tRFC"] == 20                 # 260 ns at 75 MHz, the datasheet's
    assert [w[1] for w in info["init"] if w[3].startswith("Load Mode Register 0")] == [1]
    assert [w[3] for w in info["init"][-2:]] == ["hardware control", "init done"]


@pytest.mark.parametrize("lanes", [((0, 4), (0, 3)), ((3, 0), (1, 7))])
def test_fixed_read_leveling_is_written_before_the_handover(ecpix5_dram_core, lanes):
    """Each lane's delay and bitslip reset, then incremented to the given values, each action
    between a select of its lane and a deselect with every DQS buffer paused, as LiteX's BIOS
    sets what its search found; all before the DFI goes to the controller."""
    from systolica.rtl.dram_init import init_writes

    info = ecpix5_dram_core.info
    writes = init_writes(info, lanes)
    handover = [w[3] for w in writes].index("hardware control")
    leveling = writes[len(info["init"]) - 2:handover]
    assert writes[:len(info["init"]) - 2] == info["init"][:-2]
    csr = {address >> 2: name for name, address in info["csr"].items()}
    sel = info["csr"]["ddrphy_dly_sel"] >> 2
    for lane, (bitslip, delay) in enumerate(lanes):
        actions = [csr[w[0]] for w in leveling if w[0] != sel and w[3].startswith(f"lane {lane}")]
        assert actions.count("ddrphy_rdly_dq_bitslip") == bitslip
        assert actions.count("ddrphy_rdly_dq_inc") == delay
        assert actions[:2] == ["ddrphy_rdly_dq_rst", "ddrphy_rdly_dq_bitslip_rst"]
    for i in range(0, len(leveling), 5):
        assert [w[1] for w in leveling[i:i + 5] if w[0] == sel][1:] == [0, 0xff, 0]
    with pytest.raises(ValueError, match="must be below 4 and 8"):
        init_writes(info, ((4, 0), (0, 0)))
    with pytest.raises(ValueError, match="read leveling values are needed"):
        init_writes(info)


def test_ecpix5_dram_board_elaborates_in_the_controllers_clock():
    """The ECPIX-5 DRAM bitstream's design, up to the build script (no Yosys, no nextpnr): the
    LiteDRAM core's Verilog beside it, every DDR3 pin of the amaranth-boards resource placed,
    one clock for the whole design (the core's 75 MHz user_clk) and no PLL of the board's own,
    3 Mbaud at divisor 25 exactly."""
    board = BOARDS["ecpix5-85f-dram"]
    cfg = board.config
    assert (cfg.link_bytes, cfg.dram_mib, cfg.rx_bytes) == (16, 512, 2048)
    # The simulated DRAM board's array, so its measured cycles are this board's.
    sim = Config(dram_mib=512)
    for field in ("rows", "cols", "formats", "lane_weights", "scale_share", "block_period",
                  "link_bytes", "max_k"):
        assert getattr(cfg, field) == getattr(sim, field), field
    top = board.make_top()
    files = board.make_platform().prepare(top, name="systolica").files
    assert "litedram_core.v" in files and "module litedram_core" in files["litedram_core.v"]
    lpf = files["systolica.lpf"]
    for pin in ("T5", "U6", "P1", "H3", "V4", "V1", "W2", "U4", "P3", "R3", "T3", "P2"):
        assert f'SITE "{pin}"' in lpf, pin
    # clk100 is the only clock the LPF names: nextpnr derives the rest through the core's PLL.
    assert 'FREQUENCY PORT "clk100_0__io" 100000000.0 HZ' in lpf and "FREQUENCY NET" not in lpf
    il = files["systolica.il"]
    assert "EHXPLLL" not in il and "litedram_core" in il
    assert (top.divisor, top.baud_error) == (25, 0)


@pytest.mark.parametrize(("change", "match"), [
    (dict(link_bytes=1, dram_mib=0, rx_fifo_words=2048), "config must be a Config with DRAM"),
    (dict(clk_freq=100e6), "is not the DRAM core's system clock"),
])
def test_dram_board_refuses_a_config_it_cannot_run(change, match):
    board = BOARDS["ecpix5-85f-dram"]
    cfg_change = {k: v for k, v in change.items() if k != "clk_freq"}
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(board, config=dataclasses.replace(board.config, **cfg_change),
                            **{k: v for k, v in change.items() if k == "clk_freq"})
