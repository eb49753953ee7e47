"""The DMA engines (`rtl.dram_writer`, `rtl.dram_reader`, sharing the port through
`rtl.dram_port_mux`) on LiteDRAM's controller and its simulated DDR3 (`dram_bench.DramTestTop`
with ``dma``), in Verilator.

Each cocotb case (tests/cocotb_dram_dma.py) is one line: runs of random words written through the
writer and read back through the reader, with idle cycles on the written words and backpressure
on the words read as patterns say, compared bit for bit (runs of one word, across a bank's end
and a row's, at the top of memory and wrapping past it); a sink that stalls for hundreds of
cycles at a time, which only the reader's reservation keeps from losing words; and the bytes per
cycle of sequential writes and reads, through the engines and on the raw port in the same
simulation. The first run compiles the simulator (a few minutes on a busy machine).
"""

import pathlib
import time
import zlib

import pytest
from dram_bench import DramDesign, run_case

from systolica.config import Config
from systolica.sim import cocotb_build

TESTS = pathlib.Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def dram_dma():
    """(the simulator build, seconds it took to build: 0 when cached)."""
    started = time.monotonic()
    build = cocotb_build.CocotbBuild(Config(), sim="verilator", design=DramDesign(dma=True))
    return build, time.monotonic() - started


RUNS_BACK_TO_BACK = [["random", 1], ["bank-end", 10], ["row-end", 12], ["top", 8],
                     ["random", 1], ["wrap", 6], ["random", 3], ["random", 100]]

CASES = {
    "one-run-idle-source-1110-sink": ("write_read_back", dict(
        runs=[["random", 600]], source="random", sink="1110", read_chunk=600, timeout_us=500)),
    "runs-back-to-back-random-sink": ("write_read_back", dict(
        runs=RUNS_BACK_TO_BACK, source="1110", sink="random", read_chunk=16, timeout_us=200)),
    "runs-back-to-back-fast": ("write_read_back", dict(
        runs=RUNS_BACK_TO_BACK, source="always", sink="always", read_chunk=5, timeout_us=200)),
    "stalling-sink": ("write_read_back", dict(
        runs=[["random", 300], ["row-end", 40]], source="always", sink="stalls",
        read_chunk=340, timeout_us=1000)),
    "bandwidth": ("sequential_bandwidth", dict(words=2048)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_dram_dma(name, dram_dma, tmp_path, capsys):
    build, build_s = dram_dma
    testcase, params = CASES[name]
    figures, run_s = run_case(build, "cocotb_dram_dma", TESTS, testcase, params,
                              tmp_path / "report.json", seed=zlib.crc32(name.encode()) & 0xFFFF)
    if testcase == "sequential_bandwidth":
        peak = figures["peak_bytes_per_cycle"]
        rates = {k: figures[k] for k in ("raw_write", "raw_read", "dma_write", "dma_read")}
        summary = f"{figures['words']} sequential words, B/cycle (of the {peak:g} peak): " + \
            ", ".join(f"{k} {v:.2f} ({v / peak:.0%})" for k, v in rates.items()) + \
            f"; reader/raw {rates['dma_read'] / rates['raw_read']:.1%}" + \
            f", writer/raw {rates['dma_write'] / rates['raw_write']:.1%}"
        assert all(0 < v <= peak for v in rates.values()), rates
        assert rates["dma_read"] >= 0.9 * rates["raw_read"], rates
    else:
        summary = ", ".join(f"{k} {v}" for k, v in figures.items())
    with capsys.disabled():
        print(f"\nDRAM DMA {name}: {summary}; simulator build (or cache check) {build_s:.0f} s, "
              f"cocotb run {run_s:.1f} s")
