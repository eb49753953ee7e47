"""Building blocks of the formal checks: past values, the stream rules, a free
host on the link, and a way to reach signals inside an elaborated submodule."""

from amaranth.asserts import AnyConst, AnySeq
from amaranth.hdl import Assume, Signal, Value

__all__ = ["any_const", "any_seq", "elaborate_once", "free_host", "past", "stream_rules"]


def any_const(m, shape, name):
    """A signal named ``name`` (so that a trace shows it) holding any value, the same in every
    cycle."""
    sig = Signal(shape, name=name)
    m.d.comb += sig.eq(AnyConst(shape))
    return sig


def any_seq(m, shape, name):
    """A signal named ``name`` holding any value, chosen anew each cycle."""
    sig = Signal(shape, name=name)
    m.d.comb += sig.eq(AnySeq(shape))
    return sig


def past(m, value, name):
    """``value`` one cycle ago (its shape's zero in the first cycle)."""
    value = Value.cast(value)
    reg = Signal(value.shape(), name=f"past_{name}")
    m.d.sync += reg.eq(value)
    return reg


def stream_rules(m, port, check, label):
    """The `amaranth.lib.stream` rules for the producer of ``port``: once ``valid`` is high it
    stays high until a cycle with ``ready``, and ``payload`` does not change meanwhile.

    ``check`` is ``Assert`` (the design produces the stream) or ``Assume`` (the environment
    does); ``label`` names the port in the property's message.
    """
    waiting = past(m, port.valid & ~port.ready, f"{label}_waiting")
    payload = past(m, port.payload, f"{label}_payload")
    with m.If(waiting):
        m.d.comb += [
            check(port.valid, f"{label}: valid dropped before ready"),
            check(Value.cast(port.payload) == payload,
                  f"{label}: payload changed while valid and not ready"),
        ]


def free_host(m, accel, width):
    """Drive an `Accelerator`'s link from a host that does anything the stream rules allow:
    each cycle it may offer any word on ``link_rx`` (and must then hold it until it is taken)
    and may or may not take a word from ``link_tx``."""
    m.d.comb += [
        accel.link_rx.valid.eq(any_seq(m, 1, "host_valid")),
        accel.link_rx.payload.eq(any_seq(m, width, "host_word")),
        accel.link_tx.ready.eq(any_seq(m, 1, "host_ready")),
    ]
    stream_rules(m, accel.link_rx, Assume, "link_rx")


def elaborate_once(elaboratable, platform):
    """Elaborate ``elaboratable`` now and return its `Module`, and make every later elaboration
    return that same module: the caller may then use the signals of its submodules (which
    exist only once it is elaborated) in properties, and the design uses the same ones."""
    module = elaboratable.elaborate(platform)
    elaboratable.elaborate = lambda platform: module
    return module

