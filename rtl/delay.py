"""A chain of registers: ``value`` delayed by a fixed number of cycles."""

from amaranth.hdl import Signal

__all__ = ["delay"]


def delay(m, value, cycles, name):
    """``value`` as seen ``cycles`` clock edges later (registers named ``{name}_d{i}``)."""
    for i in range(cycles):
        stage = Signal.like(value, name=f"{name}_d{i}")
        m.d.sync += stage.eq(value)
        value = stage
    return value
