"""The reply framer's headers: a header's fields chosen in a state of its FSM and loaded into its
shift register (`Framer`)."""

from amaranth.hdl import Cat, Const, Signal

from systolica import protocol

from .frame_layouts import Header
from .reply_crc import CRC_AT

__all__ = ["header_sender"]


def header_sender(m, config, load, after):
    """The `Framer`'s ``send_header``: called in a state of its FSM, it loads a header (CRC 0) into the shift
    register and goes to SEND (serial mode) or HEAD (wide mode: its CRC first). Its arguments
    are the header's fields and ``then``: where the FSM goes once the header is sent (0 idle,
    1 rows, 2 identify). With `Config.framer_state_loads`, ``send_header`` only chooses the
    fields of one shared header, and ``header``, called first in the state, loads it
    whatever is chosen (zeros when nothing is); else ``header`` is None."""
    lb = config.link_bytes
    serial = lb <= 4
    nwords = (CRC_AT if serial else protocol.HEADER_BYTES) // lb
    shared = None
    if config.framer_state_loads:
        shared = Signal(Header)     # its magic, arg3 and crc are constants in `header`

    def send_header(op, status=0, tag=0, arg0=0, arg1=0, arg2=0, length=0, info=0, then=0):
        if shared is None:
            fields = Signal(Header)
            m.d.comb += fields.magic.eq(protocol.MAGIC)
        else:
            fields = shared
        for name, value in dict(op=op, status=status, tag=tag, arg0=arg0, arg1=arg1,
                                arg2=arg2, length=length, info=info).items():
            m.d.comb += fields[name].eq(value)
        m.d.sync += after.eq(then)
        if shared is None:
            load(fields, 0, nwords)
        m.next = "SEND" if serial else "HEAD"

    def header():
        # The constants are in the loaded value, not driven into ``shared``: Yosys writes a
        # constant comb drive as an `always @*` with no inputs, which a Verilator build of
        # the device with `Config.row_hold` never ran (the magic byte left as 0).
        fields, zeros_at = shared.as_value(), Header.as_shape()["arg3"].offset
        load(Cat(Const(protocol.MAGIC, 8), fields[8:zeros_at],
                 Const(0, len(fields) - zeros_at)), 0, nwords)

    return send_header, (None if shared is None else header)
