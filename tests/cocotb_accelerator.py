"""cocotb tests of the whole accelerator behind its link; run by tests/test_accelerator.py.

The case (shapes, data kinds, idle/backpressure) comes as JSON in SYSTOLICA_CASE.
"""

import json
import os

import cocotb
import numpy as np
import pytest
from block_data import random_activations, random_blocks

from systolica.host.block_formats import BLOCK, FORMATS, block_gemm_reference
from systolica.host.frames import (
    DeviceError,
    load_a_blocks_command,
)
from systolica.protocol import IDENTIFY_PAD, Op, Status, pack_header, pad_to_words
from systolica.sim.testbench import LinkBench, check_gemm


def _case():
    return json.loads(os.environ["SYSTOLICA_CASE"])


def _config():
    return json.loads(os.environ["SYSTOLICA_CONFIG"])


def _matrix(rng, kind, shape):
    if kind == "random":
        return rng.integers(-128, 128, shape, dtype=np.int64)
    if kind == "min":
        return np.full(shape, -128, dtype=np.int64)
    if kind == "max":
        return np.full(shape, 127, dtype=np.int64)
    if kind == "zeros":
        return np.zeros(shape, dtype=np.int64)
    raise ValueError(f"unknown matrix kind {kind!r}")


async def _bench(dut, case):
    bench = LinkBench(dut, _config()["link_bytes"], idle=case.get("idle", 0.0),
                      backpressure=case.get("backpressure", 0.0), seed=case.get("seed", 0))
    await bench.start()
    await bench.identify()
    return bench


def _write_report(case, **figures):
    if "report" in case:
        with open(case["report"], "w") as f:
            json.dump(figures, f)


@cocotb.test()
async def gemms(dut):
    """Every GEMM in the case against numpy, exactly; also checks the credit rule held."""
    case = _case()
    bench = await _bench(dut, case)
    rng = np.random.default_rng(case.get("seed", 0))
    cfg = bench.config
    figures = []
    for n, k, m, a_kind, w_kind in case["gemms"]:
        a = _matrix(rng, a_kind, (n, k))
        w = _matrix(rng, w_kind, (k, m))
        await bench.load_a(a)
        got, cycles = await bench.gemm(w, n)
        check_gemm(got, a, w)
        util = n * k * m / (cfg.rows * cfg.cols * cycles)
        dut._log.info(f"GEMM {n}x{k}x{m} ({a_kind}/{w_kind}) exact; {cycles} cycles, "
                      f"MAC utilization {util:.1%}")
        figures.append(dict(n=n, k=k, m=m, cycles=cycles, utilization=util))
    in_flight = bench.session.credit.max_in_flight
    assert in_flight <= cfg.rx_bytes, (in_flight, cfg.rx_bytes)
    _write_report(case, gemms=figures, max_in_flight=in_flight)


async def _expect_error(bench, op, status):
    frame = await bench.reply()
    assert frame.op == op and frame.status == status, (frame, op, status)


@cocotb.test()
async def protocol_errors(dut):
    """Bad frames get error replies and the device keeps working."""
    case = _case()
    bench = await _bench(dut, case)
    cfg = bench.config
    lb = cfg.link_bytes

    def header(*args, **kwargs):
        return pad_to_words(pack_header(*args, **kwargs), lb)

    # Unknown opcode → error reply → next command still right.
    bench.send(header(0x7E, 1, 2, 3))
    await _expect_error(bench, 0x7E, Status.BAD_OPCODE)
    again = await bench.identify()
    assert again == cfg

    # Impossible lengths.
    for op, args in [(Op.LOAD_A, (0, 4)), (Op.LOAD_A, (4, cfg.max_k + 1)),
                     (Op.LOAD_A, (70000, 1)), (Op.LOAD_A, (cfg.rows * (cfg.act_depth // cfg.max_k + 1), cfg.max_k)),
                     (Op.GEMM, (1, 1, 0))]:
        bench.send(header(op, *args))
        await _expect_error(bench, op, Status.BAD_LENGTH)

    # A corrupt header (wrong check byte) is rejected, not obeyed.
    bad = bytearray(pack_header(Op.LOAD_A, 2, 2))
    bad[3] ^= 0x5A
    bench.send(pad_to_words(bad, lb))
    await _expect_error(bench, Op.LOAD_A, Status.BAD_CHECK)

    # GEMM before any LOAD_A, and GEMM whose N, K disagree with the loaded activations.
    bench.send(header(Op.GEMM, 2, 3, 4))
    await _expect_error(bench, Op.GEMM, Status.NOT_LOADED)
    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, (3, 5))
    await bench.load_a(a)
    bench.send(header(Op.GEMM, 3, 6, 4))
    await _expect_error(bench, Op.GEMM, Status.NOT_LOADED)

    # Block formats the build does not carry.
    if not cfg.block_formats:
        bench.send(header(Op.LOAD_A, 2, 32, 1))
        await _expect_error(bench, Op.LOAD_A, Status.BAD_FORMAT)
        bench.send(header(Op.GEMM, 3, 5, 4 | 3 << 24))
        await _expect_error(bench, Op.GEMM, Status.BAD_FORMAT)

    # Garbage between frames is skipped; a good GEMM still comes out exact.
    bench.send(bytes(IDENTIFY_PAD) + pad_to_words(bytes([0x13, 0x37, 0x00]), lb))
    w = rng.integers(-128, 128, (5, 4))
    got, _ = await bench.gemm(w, 3)
    check_gemm(got, a, w)


@cocotb.test()
async def block_products(dut):
    """GGUF-block GEMMs against the bit-exact model (host/block_formats.py), bit for bit; int8
    GEMMs in between ("int8" entries) against numpy, exactly."""
    case = _case()
    bench = await _bench(dut, case)
    rng = np.random.default_rng(case.get("seed", 0))
    cfg = bench.config
    figures = []
    for n, k, m, fmt_name, kind in case["block_gemms"]:
        if fmt_name == "int8":
            a = _matrix(rng, kind, (n, k))
            w = _matrix(rng, kind, (k, m))
            await bench.load_a(a)
            got, cycles = await bench.gemm(w, n)
            check_gemm(got, a, w)
            figures.append(dict(n=n, k=k, m=m, fmt="int8", cycles=cycles))
            continue
        fmt = FORMATS[fmt_name]
        xq, xd = random_activations(rng, n, k, kind)
        raw = random_blocks(fmt, m, k // BLOCK, rng)
        await bench.load_a_blocks(xq, xd)
        got, cycles = await bench.gemm_blocks(raw, fmt, n)
        want = block_gemm_reference(xq, xd, raw, fmt)
        bad = np.argwhere(got != want)
        assert not len(bad), (f"{fmt_name} GEMM {n}x{k}x{m}: {len(bad)} results differ, first at "
                              f"{bad[:3].tolist()}: got {got[tuple(bad[0])]:08x}, "
                              f"want {want[tuple(bad[0])]:08x}")
        util = n * k * m / (cfg.rows * cfg.cols * cycles)
        dut._log.info(f"{fmt_name} GEMM {n}x{k}x{m} ({kind}) bit-exact; {cycles} cycles, "
                      f"MAC utilization {util:.1%}")
        figures.append(dict(n=n, k=k, m=m, fmt=fmt_name, cycles=cycles, utilization=util))
    _write_report(case, gemms=figures, max_in_flight=bench.session.credit.max_in_flight)


@cocotb.test()
async def block_errors(dut):
    """inf/NaN scales are rejected with BAD_SCALE; formats the build lacks, or that do not match
    the loaded activations, with BAD_FORMAT; the device keeps working."""
    case = _case()
    bench = await _bench(dut, case)
    cfg = bench.config
    rng = np.random.default_rng(7)
    fmt = FORMATS["q4_1"]
    n, k, m = 3, 64, cfg.cols + 1

    # An activation scale that is inf: LOAD_A is refused, nothing is loaded.
    xq, xd = random_activations(rng, n, k)
    xd[1, 1] = 0x7C00
    bench.send(load_a_blocks_command(xq, xd, cfg))
    await _expect_error(bench, Op.LOAD_A, Status.BAD_SCALE)
    raw = random_blocks(fmt, m, k // BLOCK, rng)
    # (Headers alone from here on: a rejected command's payload would be skipped word by word,
    # and random bytes may look like a header.)
    gemm_header = pad_to_words(pack_header(Op.GEMM, n, k, m | fmt.code << 24), cfg.link_bytes)
    bench.send(gemm_header)
    await _expect_error(bench, Op.GEMM, Status.NOT_LOADED)

    # A weight scale that is NaN: the GEMM runs but its reply says BAD_SCALE.
    xq, xd = random_activations(rng, n, k)
    await bench.load_a_blocks(xq, xd)
    bad = raw.copy()
    bad[m - 1, fmt.block_bytes + 2:fmt.block_bytes + 4] = [0x00, 0x7E]   # m of block 1: NaN
    with pytest.raises(DeviceError, match="BAD_SCALE"):
        await bench.gemm_blocks(bad, fmt, n)

    # An int8 GEMM on block activations, and block K not a multiple of 32.
    bench.send(pad_to_words(pack_header(Op.GEMM, n, k, 2), cfg.link_bytes))
    await _expect_error(bench, Op.GEMM, Status.BAD_FORMAT)
    bench.send(pad_to_words(pack_header(Op.LOAD_A, 2, 48, 1), cfg.link_bytes))
    await _expect_error(bench, Op.LOAD_A, Status.BAD_LENGTH)
    bench.send(pad_to_words(pack_header(Op.LOAD_A, 2, 64, 2), cfg.link_bytes))
    await _expect_error(bench, Op.LOAD_A, Status.BAD_FORMAT)

    # Still exact afterwards.
    got, _ = await bench.gemm_blocks(raw, fmt, n)
    assert np.array_equal(got, block_gemm_reference(xq, xd, raw, fmt))
