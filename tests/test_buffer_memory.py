# amaranth: UnusedElaboratable=no
"""The engine's buffers (rtl/buffer_memory.py): in Amaranth's simulator, whole or in registered
pieces, every word reads back what was written, `latency` cycles after its address; on ECP5, the
pieces' block RAMs as Yosys synthesizes them (their pins: tests/test_block_ram.py)."""

import numpy as np
import pytest
from amaranth.lib import data
from test_block_ram import ecp5_netlist, write_then_read

from systolica.rtl.buffer_memory import BufferMemory


@pytest.mark.parametrize(("depth", "piece_depth"), [(40, 0), (40, 16), (32, 16), (12, 16),
                                                    (100, 8)])
def test_reads_back_what_was_written(depth, piece_depth):
    dut = BufferMemory(16, depth, piece_depth=piece_depth)
    assert dut.latency == (2 if piece_depth else 1)
    rng = np.random.default_rng(depth + piece_depth)
    words = [int(w) for w in rng.integers(0, 1 << 16, depth)]
    reads = [int(a) for a in rng.integers(0, depth, 3 * depth)]
    writes = [(int(addr), words[addr], 1) for addr in rng.permutation(depth)]
    assert write_then_read(dut, writes, reads) == [words[a] for a in reads]


def test_piece_depth_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="piece_depth must be 0 or a power of two"):
        BufferMemory(8, 64, piece_depth=24)


def test_ecp5_pieces_are_registered_block_rams(tmp_path):
    """Two full 2048-word pieces of 16-bit words (2048 × 9 RAMs, two a piece) and a short one
    of 100 words (one 512 × 36 RAM); the only flip-flops hold the piece number for the read
    mux (two stages of two bits): the read registers are the RAMs' own."""
    dut = BufferMemory(data.ArrayLayout(data.signed(8), 2), 4096 + 100, piece_depth=2048)
    module, rams, _ = ecp5_netlist(dut, tmp_path, "pieces")
    widths = sorted(int(ram["parameters"]["DATA_WIDTH_B"], 2) for ram in rams)
    assert widths == [9, 9, 9, 9, 36]
    assert all(ram["parameters"]["REGMODE_B"] == "OUTREG" for ram in rams)
    assert len([c for c in module["cells"].values() if c["type"] == "TRELLIS_FF"]) == 4
