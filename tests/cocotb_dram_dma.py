"""cocotb tests of the DMA engines on LiteDRAM's controller and its simulated DDR3; run by
tests/test_dram_dma.py on `dram_bench.DramTestTop` with ``dma``.

`DmaBench` plays the engines' user: it offers write requests and their words (with idle cycles
on the word stream as a pattern says), offers read requests, and takes the words read (with
``ready`` as another pattern says), acting on the falling edge and looking at the settled
handshakes with ReadOnly. A Python dict of the words written is the model; every word read is
compared with it, in order, so a word lost, repeated or misplaced fails. The raw native port's
own figures come from `cocotb_dram.DramBench` in the same simulation. The case comes as JSON in
SYSTOLICA_CASE.
"""

import collections
import itertools
import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import (
    ClockCycles,
    Event,
    FallingEdge,
    ReadOnly,
    RisingEdge,
    SimTimeoutError,
    with_timeout,
)
from cocotb_dram import INIT_TIMEOUT_US, DramBench

from systolica.rtl.dram_reader import request_layout

# LiteDRAM's ROW_BANK_COL map of the MT41K256M16 (docs/litedram-notes.md, section 5): a word
# address is row, bank, column/8, with 128 words per row of one bank and 8 banks.
ROW_WORDS, BANKS = 128, 8


def _case():
    """The case, and the core's description (its JSON, named by the case)."""
    case = json.loads(os.environ["SYSTOLICA_CASE"])
    with open(case["core"]) as f:
        return case, json.load(f)


def pattern(name, rng):
    """An endless sequence of 1 (offer, or be ready) and 0 (hold back) for a stream's side."""
    if name == "always":
        return itertools.repeat(1)
    if name == "1110":
        return itertools.cycle([1, 1, 1, 0])
    if name == "random":
        return (int(rng.random() < 0.5) for _ in itertools.count())
    if name == "stalls":        # long stalls with a few beats between them
        return itertools.chain.from_iterable(
            [0] * rng.randrange(20, 300) + [1] * rng.randrange(1, 5) for _ in itertools.count())
    raise ValueError(f"unknown pattern {name!r}")


class DmaBench:
    """The user of `DramTestTop`'s engines: write and read requests, the words to write, the
    words read. ``source`` and ``sink`` are `pattern` names for the write words and the read
    words."""

    def __init__(self, dut, info, *, seed=0, source="always", sink="always"):
        self.dut = dut
        self.addr_width = info["ports"]["user_port_native_0_cmd_addr"][1]
        self.data_bytes = info["ports"]["user_port_native_0_rdata_data"][1] // 8
        self.req = request_layout(self.addr_width, self.addr_width)
        self.peak = self.data_bytes / info["timing"]["tCCD"]   # one burst per tCCD
        self.rng = random.Random(seed)
        self.source, self.sink = pattern(source, self.rng), pattern(sink, self.rng)
        self.memory = {}                    # the model: the words the requests write
        self.write_reqs, self.read_reqs = collections.deque(), collections.deque()
        self.words = collections.deque()    # words to write, not yet taken
        self.expected, self.got = [], []    # words read: the model's, the engines'
        self.writes = self.dones = 0        # requests with words, ``write_done`` strobes
        self.reads = 0                      # read requests
        self.cycle = 0
        self.marks = {}                     # name: cycle of the last such event
        self._offered = {"write_req": None, "read_req": None, "write_data": None}
        self._idle = Event()

    async def start(self):
        """Clock, reset, the init sequence; then the engines run, with ``use_dma`` high."""
        dut = self.dut
        Clock(dut.clk, 10, unit="ns").start()
        dut.rst.value = 1
        dut.use_dma.value = 1
        await ClockCycles(dut.clk, 3)
        dut.rst.value = 0
        await with_timeout(RisingEdge(dut.init_played), INIT_TIMEOUT_US, "us")
        assert dut.init_done.value and not dut.init_error.value
        self.run()

    def run(self):
        """Drive the engines from now on (the port must be theirs: ``use_dma`` high)."""
        cocotb.start_soon(self._run())

    def place(self, where, count):
        """A word address for a run of ``count`` words: ``random``; across a bank's end
        (``bank-end``) or a row's (``row-end``, from bank 7 of one row to bank 0 of the next);
        ending at the top word (``top``); or wrapping around from the top to 0 (``wrap``)."""
        top = 1 << self.addr_width
        row = self.rng.randrange(top // (ROW_WORDS * BANKS) - 1) * ROW_WORDS * BANKS
        return {
            "random": lambda: self.rng.randrange(top - count),
            "bank-end": lambda: row + self.rng.randrange(1, BANKS) * ROW_WORDS - count // 2,
            "row-end": lambda: row + BANKS * ROW_WORDS - count // 2,
            "top": lambda: top - count,
            "wrap": lambda: top - count // 2,
        }[where]()

    def write(self, addr, words):
        addr %= 1 << self.addr_width
        self.write_reqs.append((addr, len(words)))
        self.words.extend(words)
        self.writes += bool(words)
        for i, word in enumerate(words):
            self.memory[(addr + i) % (1 << self.addr_width)] = word

    def read(self, addr, count):
        addr %= 1 << self.addr_width
        self.read_reqs.append((addr, count))
        self.reads += 1
        self.expected.extend(self.memory[(addr + i) % (1 << self.addr_width)]
                             for i in range(count))

    def random_words(self, count):
        return [self.rng.getrandbits(8 * self.data_bytes) for _ in range(count)]

    async def drain(self, timeout_us=2000):
        """Wait until every request is done and the engines are idle."""
        if self._busy():
            self._idle.clear()
            try:
                await with_timeout(self._idle.wait(), timeout_us, "us")
            except SimTimeoutError:
                raise AssertionError(f"not done {timeout_us} us later: {self._progress()}") \
                    from None

    def _progress(self):
        pairs = zip(self.expected, self.got, strict=False)      # the words read so far
        first_bad = next((i for i, (want, got) in enumerate(pairs) if want != got), None)
        return (f"{len(self.got)} of {len(self.expected)} words read (the first that differs "
                f"from the model's: {first_bad}), {self.dones} of {self.writes} writes done, "
                f"{len(self.words)} words not taken, writer busy {self.dut.writer_busy.value}, "
                f"reader busy {self.dut.reader_busy.value}")

    def _busy(self):
        dut = self.dut
        return bool(self.write_reqs or self.read_reqs or self.words
                    or any(v is not None for v in self._offered.values())
                    or len(self.got) < len(self.expected) or self.dones < self.writes
                    or dut.writer_busy.value or dut.reader_busy.value)

    def _offer(self, name, queue, may=True):
        if self._offered[name] is None and queue and may:
            self._offered[name] = queue.popleft()
            value = self._offered[name]
            if name != "write_data":
                value = sum(v << self.req[f].offset for f, v in zip(("addr", "count"), value,
                                                                      strict=True))
            getattr(self.dut, f"{name}__payload").value = value
        getattr(self.dut, f"{name}__valid").value = self._offered[name] is not None

    async def _run(self):
        dut = self.dut
        while True:
            await FallingEdge(dut.clk)
            self.cycle += 1
            self._offer("write_req", self.write_reqs)
            self._offer("read_req", self.read_reqs)
            self._offer("write_data", self.words, may=next(self.source))
            dut.read_data__ready.value = next(self.sink)
            await ReadOnly()
            for name in self._offered:
                if self._offered[name] is not None and getattr(dut, f"{name}__ready").value:
                    self._offered[name] = None
                    self.marks[name] = self.cycle
                    self.marks.setdefault(f"first {name}", self.cycle)
            if dut.read_data__valid.value and dut.read_data__ready.value:
                self.got.append(int(dut.read_data__payload.value))
                self.marks["read_data"] = self.cycle
            if dut.write_done.value:
                self.dones += 1
                self.marks["write_done"] = self.cycle
            if not self._busy():
                self._idle.set()

    def check(self):
        """The words read are the model's, in order, bit for bit."""
        assert len(self.got) == len(self.expected), \
            f"{len(self.got)} words read, {len(self.expected)} expected"
        bad = [i for i, (want, got) in enumerate(zip(self.expected, self.got, strict=True))
               if want != got]
        assert not bad, f"{len(bad)} of {len(self.got)} words differ; (index, model, read): " \
                        f"{[(i, hex(self.expected[i]), hex(self.got[i])) for i in bad[:3]]}"
        assert self.dones == self.writes, f"{self.dones} write_done for {self.writes} requests"


def _write_report(case, **figures):
    with open(case["report"], "w") as f:
        json.dump(figures, f)


@cocotb.test()
async def write_read_back(dut):
    """Runs of random words written through the writer, then, once all are written, read back
    through the reader (in chunks of 1 to ``read_chunk`` words), each request right after the
    previous one; every word read equals the one written."""
    case, info = _case()
    bench = DmaBench(dut, info, seed=case["seed"], source=case["source"], sink=case["sink"])
    await bench.start()
    runs = [(bench.place(where, count), count) for where, count in case["runs"]]
    for addr, count in runs:
        bench.write(addr, bench.random_words(count))
    # The engines know nothing of each other's progress: everything is written, then read.
    await bench.drain(timeout_us=case["timeout_us"])
    for addr, count in runs:
        done = 0
        while done < count:
            chunk = min(count - done, bench.rng.randint(1, case["read_chunk"]))
            bench.read(addr + done, chunk)
            done += chunk
    await bench.drain(timeout_us=case["timeout_us"])
    bench.check()
    _write_report(case, words=len(bench.got), read_requests=bench.reads, cycles=bench.cycle,
                  runs=" ".join(f"{a:#x}+{c}" for a, c in runs))


@cocotb.test()
async def sequential_bandwidth(dut):
    """``words`` sequential words written and read on the raw port (at most 16 reads in flight,
    `cocotb_dram.DramBench`), then through the writer and the reader with nothing held back;
    the bytes per cycle of all four are reported (bounded by tests/test_dram_dma.py; this test
    checks the words)."""
    case, info = _case()
    words = case["words"]
    dut.use_dma.value = 0
    raw = DramBench(dut, info, in_flight=16, seed=case["seed"])
    await raw.start()
    full, top = (1 << raw.data_bytes) - 1, (1 << raw.addr_width) - 2 * words
    base = raw.rng.randrange(top)
    for i in range(words):
        raw.write(base + i, raw.rng.getrandbits(8 * raw.data_bytes), full)
    raw_write = await raw.drain()
    for i in range(words):
        raw.read(base + i)
    raw_read = await raw.drain()
    raw.check()

    await FallingEdge(dut.clk)
    dut.use_dma.value = 1
    bench = DmaBench(dut, info, seed=case["seed"])
    bench.run()
    bench.write(base + words, bench.random_words(words))
    await bench.drain()
    dma_write = bench.marks["write_done"] - bench.marks["first write_req"] + 1
    bench.read(base + words, words)
    await bench.drain()
    dma_read = bench.marks["read_data"] - bench.marks["read_req"] + 1
    bench.check()
    size = words * raw.data_bytes
    _write_report(case, words=words, peak_bytes_per_cycle=raw.peak,
                  raw_write=round(size / raw_write, 3), raw_read=round(size / raw_read, 3),
                  dma_write=round(size / dma_write, 3), dma_read=round(size / dma_read, 3))
