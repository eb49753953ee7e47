"""A chain of registers: ``value`` delayed by a fixed number of cycles."""

from amaranth.hdl import Signal

__all__ = ["delay"]


def delay(m, value, cycles, name, *, reset_less=False):
    """``value`` as seen ``cycles`` clock edges later (registers named ``{name}_d{i}``).

    ``reset_less`` leaves the registers out of the domain's reset: for data whose meaning comes
    from a separately reset valid flag, so the reset net does not reach them at all.
    """
    for i in range(cycles):
        stage = Signal.like(value, name=f"{name}_d{i}", reset_less=reset_less)
        m.d.sync += stage.eq(value)
        value = stage
    return value
