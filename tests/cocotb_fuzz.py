"""Fuzzing the accelerator's link in cocotb (issue 18, part 4); run by tests/test_fuzz.py.

The test `fuzz` sends bursts of malformed frames (tests/fuzz_generator.py), with valid commands
among them, through `LinkBench`. After each burst it waits until the device reports (CREDIT)
every byte consumed while it waits for a header with nothing buffered: a burst that ends inside
a frame (a quarter of them; the others end with zero words that finish any open frame) is
reported only once the idle abort (`Config.abort_cycles`) has dropped that frame. Then a valid
IDENTIFY must be answered with the right configuration (every reply before its own belongs to
the burst), and a small LOAD_A + GEMM must come back bit-exact against numpy (or the bit-exact
block model). The replies of each burst are judged as tests/fuzz_judge.py says.

A burst that is not answered (its bytes not consumed, or no IDENTIFY reply after it) is a *hang*.
Figures (frames per kind, replies per status, hangs, wrong results, anomalies, the host's longest
credit stall) go to the JSON report named in the case and to the log. A failure's message names
the seed, the burst and its frames; the report holds the burst's bytes as hex.

The case comes as JSON in SYSTOLICA_CASE: frames (malformed frames to try), seed, idle,
backpressure, report (path), name (of the configuration, for messages), replay (optional: the
bytes of one burst as hex, sent first).
"""

import collections
import json
import os
import random
import time

import cocotb
import numpy as np
from block_data import random_activations, random_blocks
from cocotb.triggers import ClockCycles
from fuzz_burst import replay_burst
from fuzz_generator import KINDS, Generator
from fuzz_judge import Judge
from fuzz_model import Loaded, op_name, scan_headers, self_check, status_name
from fuzz_session import FuzzSession

from systolica.config import Config
from systolica.host.block_formats import BLOCK, FORMATS, block_gemm_reference
from systolica.host.frames import (
    gemm_blocks_command,
    gemm_command,
    load_a_blocks_command,
    load_a_command,
)
from systolica.protocol import HEADER_BYTES, Op, Status
from systolica.sim.testbench import LinkBench, gemm_reference

CHECKED_WAIT = 100_000      # cycles a burst may take to be consumed, or a reply to come
POLL = 16                   # cycles between looks at the replies while waiting
MAX_REPORTED = 20           # failures kept in full in the report


# --- the test --------------------------------------------------------------------------------

class Failure(Exception):
    pass



class Fuzzer(Judge):
    def __init__(self, dut, case):
        self.dut = dut
        self.case = case
        fields = json.loads(os.environ["SYSTOLICA_CONFIG"])
        cfg = self.cfg = Config(**{**fields, "formats": tuple(fields["formats"])})
        self.lb = cfg.link_bytes
        # The fence's zero word must not make the device report by half its buffer.
        assert 2 * self.lb < cfg.rx_bytes, cfg
        self.seed = case["seed"]
        self.bench = LinkBench(dut, self.lb, idle=case.get("idle", 0.0),
                               backpressure=case.get("backpressure", 0.0), seed=self.seed)
        self.session = self.bench.session = FuzzSession()
        self.session.clock = lambda: self.bench.cycle
        self.session.device_empty = lambda: bool(dut.rx_empty.value)
        self.rng = random.Random(self.seed)
        self.nrng = np.random.default_rng(self.seed)
        self.gen = Generator(cfg, self.rng, self.nrng, self.session.next_tag)
        self.loaded = None
        self.kinds = collections.Counter()
        self.statuses = collections.Counter()
        self.op_statuses = collections.Counter()
        self.figures = dict(bursts=0, valid_in_bursts=0, hangs=0, wrong_results=0, anomalies=0,
                            checked_gemms=0, headers_refused=0, payloads_refused=0,
                            results_voided=0, identify_in_bursts=0, burst_bytes=0,
                            fence_cycles=0)
        self.failures = []
        self.burst = None
        self.replies = []
        self.host_cpu = 0.0         # CPU seconds making bursts and judging replies

    # waiting

    async def _wait(self, done, what, limit=CHECKED_WAIT):
        start = self.bench.cycle
        while not done():
            if self.bench.cycle - start > limit:
                raise Failure(f"hang: {what} within {limit} cycles")
            await ClockCycles(self.dut.clk, POLL)
            self._collect()

    def _collect(self):
        while (frame := self.session.reply()) is not None:
            self.replies.append(frame)
            status = status_name(frame.status)
            self.statuses[status] += 1
            self.op_statuses[f"{op_name(frame.op)} {status}"] += 1

    def _sent_all(self):
        return not self.session.unsent and self.bench._holding is None

    async def _send_and_wait(self, data):
        self.session.send(data)
        await self._wait(self._sent_all, "the device takes the bytes sent")

    async def _identify(self, where):
        """IDENTIFY (the fence): every reply before its own belongs to what came before."""
        await self._wait(self._sent_all, f"the device takes the bytes sent {where}")
        at = self.session.credit.sent
        self.session.credit.identify_at.clear()     # every IDENTIFY before is answered
        tag = self.session.identify()
        await self._wait(lambda: any(f.tag == tag and f.op == Op.IDENTIFY for f in self.replies),
                         f"an IDENTIFY reply {where}")
        i = next(i for i, f in enumerate(self.replies) if f.tag == tag and f.op == Op.IDENTIFY)
        frame, before = self.replies[i], self.replies[:i]
        self.replies = self.replies[i + 1:]
        self.check_identify(frame, at)
        return before

    def check_identify(self, frame, at):
        want = (Status.OK, len(self.cfg.identify_payload()), self.lb,
                (at + HEADER_BYTES) & 0xFFFFFFFF)
        got = (frame.status, *frame.args)
        if got != want or not frame.payload_ok or frame.config != self.cfg:
            self.wrong(f"IDENTIFY reply (tag {frame.tag}) is (status, bytes, link bytes, "
                        f"count) {got}, config {frame.config}, payload CRC "
                        f"{'right' if frame.payload_ok else 'bad'}; want {want}, {self.cfg}")

    # failures

    def _where(self):
        b = self.burst
        return (f"[{self.case.get('name')} seed {self.seed}, "
                + (f"burst {b.index}]" if b is not None else "before the first burst]"))

    def _record(self, kind, message):
        self.figures[kind] += 1
        text = f"{self._where()} {message}"
        self.dut._log.error(text)
        if len(self.failures) < MAX_REPORTED:
            entry = dict(kind=kind, message=text)
            if self.burst is not None:
                entry.update(frames=self.burst.describe(), burst_hex=bytes(self.burst.data).hex())
            self.failures.append(entry)

    def wrong(self, message):
        self._record("wrong_results", message)

    def anomaly(self, message):
        self._record("anomalies", message)

    # the check after every burst

    async def check(self):
        """A small LOAD_A and GEMM (int8, or block formats every other time) after the fence:
        answered OK and exactly."""
        cfg, r, gen = self.cfg, self.rng, self.gen
        blocks = self.gen.blocks and self.figures["bursts"] % 2 == 1
        n = r.randint(1, 2 * cfg.rows + 1)
        m = r.randint(1, 2 * cfg.cols + 1)
        tag_a, tag_g = self.session.next_tag(), self.session.next_tag()
        if blocks:
            k = BLOCK * r.randint(1, 2)
            xq, xd = random_activations(self.nrng, n, k)
            fmt = r.choice([f for f in FORMATS.values() if f.code in cfg.block_formats])
            raw = random_blocks(fmt, m, k // BLOCK, self.nrng)
            data = (load_a_blocks_command(xq, xd, cfg, tag=tag_a)
                    + gemm_blocks_command(raw, fmt, n, cfg, tag=tag_g))
            loaded = Loaded(n, k, True, (xq, xd))
            want = block_gemm_reference(xq, xd, raw, fmt)
            what = f"LOAD_A {n}x{k} blocks, GEMM {fmt.name} M={m}"
        else:
            k = r.randint(1, 40)
            a = self.nrng.integers(-128, 128, (n, k))
            w = self.nrng.integers(-128, 128, (k, m))
            data = load_a_command(a, cfg, tag=tag_a) + gemm_command(w, n, cfg, tag=tag_g)
            loaded = Loaded(n, k, False, a.astype(np.int8))
            want = gemm_reference(a, w)
            what = f"LOAD_A {n}x{k}, GEMM M={m}"
        self.session.send(data)
        await self._wait(lambda: any(f.tag == tag_g and f.op == Op.GEMM for f in self.replies),
                         f"the replies to the check after the burst ({what})")
        frames, self.replies = self.replies, []
        first, final = frames[0], frames[-1]
        self.loaded = gen.loaded = None
        if (first.op, first.status, first.tag, first.args[:2]) != (Op.LOAD_A, 0, tag_a, (n, k)):
            self.wrong(f"check {what}: LOAD_A reply {first}")
            return
        self.loaded, gen.loaded = loaded, (n, k, blocks)
        if (final.op, final.status, final.tag) != (Op.GEMM, 0, tag_g):
            self.wrong(f"check {what}: GEMM reply {final}")
            return
        out = self.gemm_results(frames[1:-1], tag_g, n, m, f"check {what}")
        if out is not None:
            self.compare(out, want, f"check {what}")



    async def run_burst(self, index, burst=None):
        cpu = time.process_time()
        burst = self.burst = burst or self.gen.burst(index)
        for piece in burst.pieces:
            if piece.kind == "valid":
                self.figures["valid_in_bursts"] += 1
            elif piece.kind in KINDS:
                self.kinds[piece.kind] += 1
        self.figures["burst_bytes"] += len(burst.data)
        base = self.session.credit.sent + self.session.unsent
        for pos, h in scan_headers(bytes(burst.data)):
            if h.op == Op.IDENTIFY:
                self.session.credit.identify_at[h.tag] = base + pos
        self.host_cpu += time.process_time() - cpu
        self.replies = []
        await self._send_and_wait(bytes(burst.data))
        # The fence. The device reports the bytes it consumed (CREDIT) at once only when it waits
        # for a header with nothing buffered; a frame cut off by the burst's end is reported once
        # the idle abort has dropped it. So: every byte reported; then one zero word (idle fill,
        # or one more word of a frame still open, if the last report came from half the buffer
        # being consumed), reported too; then the IDENTIFY is read as a header.
        credit = self.session.credit
        fence = self.bench.cycle
        await self._wait(lambda: credit.acked >= credit.sent,
                         "the device reports every byte of the burst consumed")
        probe = bytes(self.lb)
        await self._send_and_wait(probe)
        await self._wait(lambda: credit.acked >= credit.sent,
                         "the device reports the zero word after the burst consumed")
        replies = await self._identify("after the burst")
        self.figures["fence_cycles"] += self.bench.cycle - fence
        self.figures["bursts"] += 1
        cpu = time.process_time()
        self.judge(burst, bytes(burst.data) + probe, replies, base)
        self.host_cpu += time.process_time() - cpu
        await self.check()

    def report(self, wall, cpu, cycles, error=None):
        figures = dict(
            self.figures, config=self.case.get("name"), seed=self.seed,
            frames_requested=self.case["frames"], frames_tried=sum(self.kinds.values()),
            kinds={k: self.kinds[k] for k in KINDS}, statuses=dict(self.statuses),
            op_statuses=dict(sorted(self.op_statuses.items())),
            max_host_stall=self.session.max_stall, abort_cycles=self.cfg.abort_cycles,
            cycles=cycles, wall_seconds=round(wall, 1), cpu_seconds=round(cpu, 1),
            host_cpu_seconds=round(self.host_cpu, 1), failures=self.failures, error=error)
        if "report" in self.case:
            with open(self.case["report"], "w") as f:
                json.dump(figures, f, indent=1)
        return figures


@cocotb.test()
async def fuzz(dut):
    """Bursts of malformed frames among valid commands; after each, the device must answer an
    IDENTIFY and a bit-exact LOAD_A + GEMM, and no damaged frame may get an OK reply. With
    ``replay`` in the case (a burst's bytes as hex), that burst first."""
    case = json.loads(os.environ["SYSTOLICA_CASE"])
    fz = Fuzzer(dut, case)
    self_check(fz.cfg, random.Random(fz.seed), np.random.default_rng(fz.seed))
    started, cpu = time.time(), time.process_time()
    error = None
    await fz.bench.start()
    try:
        await fz._identify("at the start")
        await fz.check()
        if case.get("replay"):
            await fz.run_burst(0, replay_burst(case["replay"], fz.session))
        index = 0
        while sum(fz.kinds.values()) < case["frames"]:
            await fz.run_burst(index)
            index += 1
    except Failure as exc:
        fz._record("hangs", str(exc))
        error = str(exc)
    figures = fz.report(time.time() - started, time.process_time() - cpu, fz.bench.cycle, error)
    summary = {k: figures[k] for k in ("config", "seed", "frames_tried", "bursts",
                                       "valid_in_bursts", "hangs", "wrong_results",
                                       "anomalies", "checked_gemms", "max_host_stall",
                                       "cycles", "wall_seconds", "cpu_seconds",
                                       "host_cpu_seconds")}
    dut._log.info(f"fuzz figures: {json.dumps(summary)}")
    dut._log.info(f"frames per kind: {json.dumps(figures['kinds'])}")
    dut._log.info(f"replies per status: {json.dumps(figures['statuses'])}")
    if fz.failures:
        first = fz.failures[0]
        raise AssertionError(
            f"{figures['hangs']} hangs, {figures['wrong_results']} wrong results, "
            f"{figures['anomalies']} anomalies; first: {first['message']}; frames of the burst: "
            f"{first.get('frames', '-')} (reproduce: the same seed and SYSTOLICA_FUZZ_FRAMES; "
            "the burst's bytes are in the report)")
