"""The reply framer's count of a GEMM's device cycles (its reply's arg0 and arg1), and the flags
that say when the reply may go (`Framer`)."""

from amaranth.hdl import Signal

__all__ = ["count_cycles"]


def count_cycles(m, control, busy):
    """The `Framer`'s GEMM cycle count and flags, from ``control`` (`GemmControlSignature`);
    ``busy`` is set at ``gemm_start``. Returns ``cycles``
    (device cycles since ``gemm_start`` while ``counting``), ``counting`` (set at
    ``gemm_start``, cleared by the caller at the last RESULT word's handshake),
    ``done_pending`` (the last RESULT has been sent: set and cleared by the caller) and
    ``checked`` (the payload's CRC word has been checked: cleared at ``gemm_start``, set at
    ``payload_done``)."""
    cycles = Signal(48)
    counting, done_pending, checked = Signal(), Signal(), Signal()
    with m.If(control.gemm_start):
        m.d.sync += [cycles.eq(0), counting.eq(1), busy.eq(1), checked.eq(0)]
    with m.Else():
        with m.If(counting):
            m.d.sync += cycles.eq(cycles + 1)
        with m.If(control.payload_done):
            m.d.sync += checked.eq(1)
    return cycles, counting, done_pending, checked
