"""cocotb tests of the whole accelerator behind its link; run by tests/test_accelerator.py.

The case (shapes, data kinds, idle/backpressure) comes as JSON in SYSTOLICA_CASE.
"""

import json
import os

import cocotb
import numpy as np
import pytest
from block_data import random_activations, random_blocks
from cocotb.triggers import FallingEdge

from systolica.host.block_formats import BLOCK, FORMATS, block_gemm_reference
from systolica.host.frames import (
    DeviceError,
    gemm_blocks_command,
    gemm_command,
    load_a_blocks_command,
    load_a_command,
)
from systolica.protocol import (
    HEADER_BYTES,
    IDENTIFY_PAD,
    MAGIC,
    Op,
    Status,
    frame,
    pack_header,
    pad_to_words,
)
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


async def _expect_error(bench, op, status, tag):
    """The next reply is ``op``'s error reply ``status`` to the command sent with ``tag``."""
    reply = await bench.reply()
    assert (reply.op, reply.status, reply.tag) == (op, status, tag), (reply, op, status, tag)


@cocotb.test()
async def protocol_errors(dut):
    """Bad frames get error replies carrying their tags, a header whose CRC is wrong gets none, a
    rejected command's payload is skipped by its length, and the device keeps working."""
    case = _case()
    bench = await _bench(dut, case)
    cfg = bench.config
    lb = cfg.link_bytes

    def header(op, *args, **kwargs):
        """A header alone (length 0; 32 bytes are whole words on every link) with the next tag:
        (its bytes, the tag)."""
        tag = bench.next_tag()
        return pack_header(op, *args, tag=tag, **kwargs), tag

    # Unknown opcode → error reply → next command still right.
    raw, tag = header(0x7E, 1, 2, 3)
    bench.send(raw)
    await _expect_error(bench, 0x7E, Status.BAD_OPCODE, tag)
    again = await bench.identify()
    assert again == cfg
    assert bench.line_errors == (0, 0)

    # The line's error counts (a board's UART receiver drives them) come back in IDENTIFY.
    await FallingEdge(dut.clk)          # (not in the monitor's read-only phase)
    dut.line_errors__framing.value = 2
    dut.line_errors__overruns.value = 255
    assert await bench.identify() == cfg
    assert bench.line_errors == (2, 255)

    # Impossible lengths.
    for op, args in [(Op.LOAD_A, (0, 4)), (Op.LOAD_A, (4, cfg.max_k + 1)),
                     (Op.LOAD_A, (70000, 1)), (Op.LOAD_A, (cfg.rows * (cfg.act_depth // cfg.max_k + 1), cfg.max_k)),
                     (Op.GEMM, (1, 1, 0))]:
        raw, tag = header(op, *args)
        bench.send(raw)
        await _expect_error(bench, op, Status.BAD_LENGTH, tag)

    # A field that must be 0 in a command (status, info, arg3) is not: BAD_CHECK.
    for field in ("status", "info", "arg3"):
        raw, tag = header(Op.LOAD_A, 2, 2, **{field: 1})
        bench.send(raw)
        await _expect_error(bench, Op.LOAD_A, Status.BAD_CHECK, tag)

    # A header whose CRC is wrong (here in its tag, its length, its CRC) gets no reply at all:
    # the device drops it and hunts on, so the IDENTIFY right behind it is answered first.
    for byte in (3, 17, 30):
        bad = bytearray(header(Op.LOAD_A, 2, 2)[0])
        bad[byte] ^= 0x5A
        bench.send(bytes(bad))
        assert await bench.identify() == cfg

    # GEMM before any LOAD_A.
    raw, tag = header(Op.GEMM, 2, 3, 4)
    bench.send(raw)
    await _expect_error(bench, Op.GEMM, Status.NOT_LOADED, tag)

    # A rejected command's payload is skipped by its length, not searched for headers: a GEMM
    # (N=1, K=32, M=1: 32 one-byte weight vectors) whose payload holds a whole valid header;
    # that header must get no reply.
    inner = pack_header(0x7E, 9, tag=bench.next_tag())
    tag = bench.next_tag()
    bench.send(frame(Op.GEMM, 1, 32, 1, inner + bytes(32 * lb - len(inner)), link_bytes=lb,
                     tag=tag))
    await _expect_error(bench, Op.GEMM, Status.NOT_LOADED, tag)

    # A LOAD_A whose payload arrives damaged (one bit of A[0, 0]): BAD_CRC, and nothing counts
    # as loaded.
    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, (3, 5))
    tag = bench.next_tag()
    damaged = bytearray(load_a_command(a, cfg, tag=tag))
    damaged[HEADER_BYTES] ^= 0x01
    bench.send(bytes(damaged))
    await _expect_error(bench, Op.LOAD_A, Status.BAD_CRC, tag)
    raw, tag = header(Op.GEMM, 3, 5, 4)
    bench.send(raw)
    await _expect_error(bench, Op.GEMM, Status.NOT_LOADED, tag)

    # GEMM whose N, K disagree with the loaded activations: refused, its weights skipped.
    await bench.load_a(a)
    tag = bench.next_tag()
    bench.send(gemm_command(rng.integers(-128, 128, (6, 4)), 3, cfg, tag=tag))
    await _expect_error(bench, Op.GEMM, Status.NOT_LOADED, tag)

    # A GEMM whose weight payload's CRC word arrives damaged: its RESULTs come, then the GEMM
    # reply says BAD_CRC (the host discards them). The loaded A stays.
    tag = bench.next_tag()
    damaged = bytearray(gemm_command(rng.integers(-128, 128, (5, 4)), 3, cfg, tag=tag))
    damaged[-2] ^= 0x10
    bench.send(bytes(damaged))
    with pytest.raises(DeviceError, match="BAD_CRC"):
        await bench.gemm_replies(3, 5, 4, tag)

    # Frames that stop arriving: after the idle timeout (`Config.abort_cycles`) the device drops
    # them. An accepted LOAD_A then replies ABORTED (nothing counts as loaded); a GEMM sends its
    # RESULTs (the payload's rest made up) and an ABORTED reply.
    tag = bench.next_tag()
    bench.send(load_a_command(a, cfg, tag=tag)[:HEADER_BYTES + lb])
    await _expect_error(bench, Op.LOAD_A, Status.ABORTED, tag)
    raw, tag = header(Op.GEMM, 3, 5, 4)
    bench.send(raw)
    await _expect_error(bench, Op.GEMM, Status.NOT_LOADED, tag)
    await bench.load_a(a)
    tag = bench.next_tag()
    bench.send(gemm_command(rng.integers(-128, 128, (5, 4)), 3, cfg, tag=tag)[:HEADER_BYTES + 2 * lb])
    with pytest.raises(DeviceError, match="ABORTED"):
        await bench.gemm_replies(3, 5, 4, tag)

    # Block formats the build does not carry (a block LOAD_A whole: its payload is skipped).
    if not cfg.block_formats:
        tag = bench.next_tag()
        xq, xd = random_activations(rng, 2, 32)
        bench.send(load_a_blocks_command(xq, xd, cfg, tag=tag))
        await _expect_error(bench, Op.LOAD_A, Status.BAD_FORMAT, tag)
        raw, tag = header(Op.GEMM, 3, 5, 4 | 3 << 24)
        bench.send(raw)
        await _expect_error(bench, Op.GEMM, Status.BAD_FORMAT, tag)

    # Garbage between frames is skipped (a magic byte in it starts a candidate whose CRC fails;
    # the GEMM header inside that candidate is found); a good GEMM still comes out exact.
    bench.send(bytes(IDENTIFY_PAD) + pad_to_words(bytes([MAGIC, 0x13, 0x37]), lb))
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
    the loaded activations, with BAD_FORMAT; a refused command's payload is skipped by its
    length; every error reply carries its command's tag; the device keeps working."""
    case = _case()
    bench = await _bench(dut, case)
    cfg = bench.config
    rng = np.random.default_rng(7)
    fmt = FORMATS["q4_1"]
    n, k, m = 3, 64, cfg.cols + 1

    # An activation scale that is inf: LOAD_A is refused, nothing is loaded.
    xq, xd = random_activations(rng, n, k)
    xd[1, 1] = 0x7C00
    tag = bench.next_tag()
    bench.send(load_a_blocks_command(xq, xd, cfg, tag=tag))
    await _expect_error(bench, Op.LOAD_A, Status.BAD_SCALE, tag)
    raw = random_blocks(fmt, m, k // BLOCK, rng)
    # Refused at its header: the whole GEMM frame goes out, and its payload (random blocks,
    # magic bytes likely among them) is skipped by its length, not searched for headers.
    tag = bench.next_tag()
    bench.send(gemm_blocks_command(raw, fmt, n, cfg, tag=tag))
    await _expect_error(bench, Op.GEMM, Status.NOT_LOADED, tag)

    # A weight scale that is NaN: the GEMM runs but its reply says BAD_SCALE.
    xq, xd = random_activations(rng, n, k)
    await bench.load_a_blocks(xq, xd)
    bad = raw.copy()
    bad[m - 1, fmt.block_bytes + 2:fmt.block_bytes + 4] = [0x00, 0x7E]   # m of block 1: NaN
    with pytest.raises(DeviceError, match="BAD_SCALE"):
        await bench.gemm_blocks(bad, fmt, n)

    # An int8 GEMM on block activations (whole, with its weights), and block K not a multiple
    # of 32, and an unknown activation format (headers alone).
    tag = bench.next_tag()
    bench.send(gemm_command(rng.integers(-128, 128, (k, 2)), n, cfg, tag=tag))
    await _expect_error(bench, Op.GEMM, Status.BAD_FORMAT, tag)
    for args, status in [((2, 48, 1), Status.BAD_LENGTH), ((2, 64, 2), Status.BAD_FORMAT)]:
        tag = bench.next_tag()
        bench.send(pack_header(Op.LOAD_A, *args, tag=tag))
        await _expect_error(bench, Op.LOAD_A, status, tag)

    # Still exact afterwards.
    got, _ = await bench.gemm_blocks(raw, fmt, n)
    assert np.array_equal(got, block_gemm_reference(xq, xd, raw, fmt))
