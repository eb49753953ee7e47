"""cocotb tests of LiteDRAM's controller on its simulated DDR3; run by tests/test_dram.py.

`DramBench` plays the user of the native port: it offers commands (with random idle cycles if
asked), puts each write's data on ``wdata`` when it offers the command, reserves room for a read
before offering it (never more than ``in_flight`` reads outstanding, as the port requires) and
takes every ``rdata`` word. `MemoryModel` is the Python model: 128-bit words written with byte
enables; each read's expected word is the model's when its command is taken (a port's commands
complete in order). The case comes as JSON in SYSTOLICA_CASE.
"""

import collections
import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, FallingEdge, ReadOnly, RisingEdge, with_timeout

from systolica.rtl.dram_controller import cmd_layout, wdata_layout

INIT_TIMEOUT_US = 2000


def _case():
    """The case, and the core's description (its JSON, named by the case)."""
    case = json.loads(os.environ["SYSTOLICA_CASE"])
    with open(case["core"]) as f:
        return case, json.load(f)


class MemoryModel:
    """Words of ``data_bytes`` bytes, written under a byte-enable mask (bit i: byte i)."""

    def __init__(self, data_bytes):
        self.data_bytes = data_bytes
        self.words = {}

    def write(self, addr, value, mask):
        old = self.words.get(addr, 0)
        bytes_mask = sum(0xFF << (8 * i) for i in range(self.data_bytes) if mask >> i & 1)
        self.words[addr] = (old & ~bytes_mask) | (value & bytes_mask)

    def read(self, addr):
        return self.words[addr]


class DramBench:
    """The native port's user, acting on the falling edge and looking at the settled
    handshakes with ReadOnly (as `sim.testbench.LinkBench` does)."""

    def __init__(self, dut, info, *, in_flight=16, idle=0.0, seed=0):
        self.dut = dut
        self.addr_width = info["ports"]["user_port_native_0_cmd_addr"][1]
        self.data_bytes = info["ports"]["user_port_native_0_rdata_data"][1] // 8
        self.cmd = cmd_layout(self.addr_width)
        self.wdata = wdata_layout(8 * self.data_bytes)
        self.peak = self.data_bytes / info["timing"]["tCCD"]   # one burst per tCCD
        self.model = MemoryModel(self.data_bytes)
        self.in_flight, self.idle = in_flight, idle
        self.rng = random.Random(seed)
        self.commands = collections.deque()      # (we, addr, data, mask) not yet offered
        self._offered = None
        self._write_data = collections.deque()   # (data, mask) of offered writes
        self._wdata_shown = None                 # the one on wdata__payload
        self._reads = collections.deque()        # (addr, expected) of taken reads
        self.reserved = 0                        # reads offered or in flight
        self.most_reserved = 0
        self.results = []                        # (addr, expected, got)
        self.errors = []
        self.cycle = 0
        self.first_cycle = self.last_cycle = None
        self._idle_event = Event()

    def pack(self, layout, **fields):
        return sum(value << layout[name].offset for name, value in fields.items())

    async def start(self):
        dut = self.dut
        Clock(dut.clk, 10, unit="ns").start()
        dut.rst.value = 1
        dut.cmd__valid.value = 0
        dut.wdata__valid.value = 0
        if hasattr(dut, "use_dma"):         # the top with the DMA engines: the port is ours
            dut.use_dma.value = 0
        await ClockCycles(dut.clk, 3)
        dut.rst.value = 0
        await with_timeout(RisingEdge(dut.init_played), INIT_TIMEOUT_US, "us")
        assert dut.init_done.value and not dut.init_error.value
        cocotb.start_soon(self._run())

    def write(self, addr, data, mask):
        self.commands.append((1, addr, data, mask))

    def read(self, addr):
        self.commands.append((0, addr, None, None))

    async def drain(self, timeout_us=1000):
        """Wait until every command is done; returns the cycles from the first command taken
        (since the last drain) to the last word moved."""
        if self._busy():
            self._idle_event.clear()
            await with_timeout(self._idle_event.wait(), timeout_us, "us")
        cycles = self.last_cycle - self.first_cycle + 1
        self.first_cycle = None
        assert not self.errors, self.errors[:5]
        return cycles

    def _offer(self):
        if self._offered is not None or not self.commands or self.rng.random() < self.idle:
            return
        we, _, data, mask = self.commands[0]
        if not we:
            if self.reserved >= self.in_flight:
                return
            self.reserved += 1
            self.most_reserved = max(self.most_reserved, self.reserved)
        else:                                      # the data goes out with its command
            self._write_data.append((data, mask))
        self._offered = self.commands.popleft()
        self.dut.cmd__payload.value = self.pack(self.cmd, we=we, addr=self._offered[1])

    async def _run(self):
        dut = self.dut
        while True:
            await FallingEdge(dut.clk)
            self.cycle += 1
            self._offer()
            dut.cmd__valid.value = self._offered is not None
            dut.wdata__valid.value = bool(self._write_data)
            if self._write_data and self._write_data[0] is not self._wdata_shown:
                self._wdata_shown = self._write_data[0]
                data, mask = self._wdata_shown
                dut.wdata__payload.value = self.pack(self.wdata, data=data, we=mask)
            await ReadOnly()
            self._observe()

    def _observe(self):
        dut, moved = self.dut, False
        if self._offered is not None and dut.cmd__ready.value:
            we, addr, data, mask = self._offered
            if we:
                self.model.write(addr, data, mask)
            else:
                self._reads.append((addr, self.model.read(addr)))
            self._offered, moved = None, True
            if self.first_cycle is None:
                self.first_cycle = self.cycle
        if dut.wdata__ready.value:
            if not self._write_data:
                self.errors.append(f"cycle {self.cycle}: wdata taken with none offered")
            else:
                self._write_data.popleft()
                moved = True
        if dut.rdata_valid.value:
            if not self._reads:
                self.errors.append(f"cycle {self.cycle}: rdata with no read in flight")
            else:
                addr, expected = self._reads.popleft()
                self.results.append((addr, expected, int(dut.rdata.value)))
                self.reserved -= 1
                moved = True
        if moved:
            self.last_cycle = self.cycle
        if not self._busy():
            self._idle_event.set()

    def _busy(self):
        return bool(self.commands or self._offered or self._reads or self._write_data)

    def check(self):
        """Every read's word equals the model's, bit for bit."""
        bad = [(hex(a), hex(want), hex(got)) for a, want, got in self.results if want != got]
        assert not bad, f"{len(bad)} of {len(self.results)} reads differ (addr, model, DRAM): " \
                        f"{bad[:4]}"


def _write_report(case, **figures):
    with open(case["report"], "w") as f:
        json.dump(figures, f)


def _addresses(bench, count):
    """Distinct word addresses over banks and rows: both ends of the space, a row's and a
    bank's boundaries, two rows of one bank, and random ones."""
    top = (1 << bench.addr_width) - 1
    base = bench.rng.randrange(1 << bench.addr_width) & ~0x3FF
    special = [0, 1, 127, 128, 1023, 1024, top, top - 1, top - 127, top - 128,
               base + 5, base + 5 + 1024, base + 5 + 2048]
    chosen = set(special)
    while len(chosen) < max(count, len(special)):
        chosen.add(bench.rng.randrange(top + 1))
    addresses = sorted(chosen)
    bench.rng.shuffle(addresses)
    return addresses


@cocotb.test()
async def random_access(dut):
    """Writes with random byte enables and reads, interleaved, at addresses over the whole
    space; every word read equals the model's."""
    case, info = _case()
    bench = DramBench(dut, info, in_flight=16, seed=case["seed"])
    await bench.start()
    rng, full = bench.rng, (1 << bench.data_bytes) - 1
    addresses = _addresses(bench, case["addresses"])
    written = []
    for addr in addresses:                       # every word whole first: no unknown bytes
        bench.write(addr, rng.getrandbits(8 * bench.data_bytes), full)
        written.append(addr)
        if rng.random() < 0.5:
            bench.read(rng.choice(written))
    for _ in range(case["ops"]):
        addr = rng.choice(addresses)
        if rng.random() < 0.5:
            mask = rng.getrandbits(bench.data_bytes)
            bench.write(addr, rng.getrandbits(8 * bench.data_bytes), mask)
        else:
            bench.read(addr)
    for addr in addresses:
        bench.read(addr)
    await bench.drain(timeout_us=5000)
    bench.check()
    _write_report(case, reads=len(bench.results), addresses=len(addresses))


@cocotb.test()
async def sequential_read(dut):
    """Sequential words written, then read with at most ``in_flight`` reads outstanding; the
    bytes per cycle of both are reported (not asserted: the test only bounds them)."""
    case, info = _case()
    bench = DramBench(dut, info, in_flight=case["in_flight"], seed=case["seed"])
    await bench.start()
    words = case["words"]
    base = bench.rng.randrange((1 << bench.addr_width) - words)
    full = (1 << bench.data_bytes) - 1
    for i in range(words):
        bench.write(base + i, bench.rng.getrandbits(8 * bench.data_bytes), full)
    write_cycles = await bench.drain()
    for i in range(words):
        bench.read(base + i)
    read_cycles = await bench.drain()
    bench.check()
    assert len(bench.results) == words
    _write_report(case, words=words, in_flight=case["in_flight"],
                  most_in_flight=bench.most_reserved,
                  write_bytes_per_cycle=round(words * bench.data_bytes / write_cycles, 3),
                  read_bytes_per_cycle=round(words * bench.data_bytes / read_cycles, 3),
                  peak_bytes_per_cycle=bench.peak)


@cocotb.test()
async def stalled_reads(dut):
    """Reads of random written words, offered after random idle cycles; every word equals
    the model's."""
    case, info = _case()
    bench = DramBench(dut, info, in_flight=case["in_flight"], idle=case["idle"], seed=case["seed"])
    await bench.start()
    addresses = _addresses(bench, 32)
    full = (1 << bench.data_bytes) - 1
    for addr in addresses:
        bench.write(addr, bench.rng.getrandbits(8 * bench.data_bytes), full)
    for _ in range(case["reads"]):
        bench.read(bench.rng.choice(addresses))
    await bench.drain(timeout_us=5000)
    bench.check()
    assert len(bench.results) == case["reads"]
    _write_report(case, reads=len(bench.results), idle=case["idle"])
