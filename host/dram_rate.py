"""How fast a device's DRAM can deliver words: its controller's peak read rate, the share its
refresh leaves, and the clock both run at, from the DRAM controller core the device is built
with (`sim.dram_core`: LiteDRAM's controller for the ECPIX-5's 16-bit DDR3 at its 1:2 rate).

The peak is one `protocol.DRAM_WORD_BYTES` word (a BL8 burst of the 16-bit bus) every ``tCCD``
system cycles: 8 bytes a cycle, 600 MB/s at the 75 MHz system clock. Refresh takes the bus for
``tRFC`` of every ``tREFI`` cycles, so sequential reads reach at most ``1 - tRFC/tREFI`` of the
peak (about 96.6 % with the datasheet's tRFC of 260 ns; 82.3 % with LiteDRAM's own 208 clocks, see
`sim.dram_core`; tests/test_dram.py measures the controller alone).
The accelerator runs in the controller's system clock domain (one clock for both: the
simulated board's design, and the assumption for the ECPIX-5), so rates per device cycle
compare directly with the device's cycle counts.
"""

import dataclasses

from systolica.protocol import DRAM_WORD_BYTES

__all__ = ["DramRate", "dram_rate"]


@dataclasses.dataclass(frozen=True)
class DramRate:
    """A DRAM controller's read rate.

    Attributes
    ----------
    burst_cycles : int
        System cycles between two words' bursts at best (``tCCD``).
    refresh_cycles, refresh_interval : int
        A refresh takes the bus for ``refresh_cycles`` (``tRFC``) of every
        ``refresh_interval`` (``tREFI``) system cycles.
    clock_hz : float
        The system clock (the controller's user port; the accelerator's clock too).
    source : str
        Where the figures come from, for a person.
    """

    burst_cycles: int
    refresh_cycles: int
    refresh_interval: int
    clock_hz: float
    source: str

    @property
    def peak_bytes_per_cycle(self):
        return DRAM_WORD_BYTES / self.burst_cycles

    @property
    def peak_bytes_per_s(self):
        return self.peak_bytes_per_cycle * self.clock_hz

    @property
    def refresh_ceiling(self):
        """The fraction of the peak that refresh leaves to reads."""
        return 1 - self.refresh_cycles / self.refresh_interval


def dram_rate(config):
    """The `DramRate` of the DRAM controller core a device of ``config`` is built with (the
    simulated board's; the ECPIX-5's has the same parameters). ValueError for a configuration
    without DRAM. Generates the core if it is not cached yet (`sim.dram_core`)."""
    from systolica.sim.verilog import dram_core_for

    if not config.dram_mib:
        raise ValueError("the device has no DRAM (its IDENTIFY reports dram_mib = 0)")
    info = dram_core_for(config).info
    timing, parameters = info["timing"], info["parameters"]
    return DramRate(
        burst_cycles=timing["tCCD"], refresh_cycles=timing["tRFC"],
        refresh_interval=timing["tREFI"], clock_hz=float(parameters["sys_clk_freq"]),
        source=f"LiteDRAM {parameters['sdram_module']} x{parameters['sdram_module_nb']} "
               f"{parameters['memtype']} at {parameters['rate']}")
