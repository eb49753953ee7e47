"""The reply framer's CRC-32: the processor that follows the words as they leave, and its states."""

from amaranth.hdl import Cat, Const, Signal
from amaranth.lib.crc import Algorithm, catalog

from systolica import protocol

__all__ = ["CRC_AT", "crc_states"]

CRC_AT = 28     # a header's CRC covers its bytes 0-27 and is its bytes 28-31


def crc_states(m, lb, out, idx, load):
    """The CRC-32 processor and its FSM states: CRC (loads a CRC word) and, in wide mode,
    HEAD, HEAD_CRC and CRC_END; called inside the framer's FSM with its link width ``lb``, its
    shift register ``out``, word index ``idx`` and ``load(value, source, nwords)``. Returns
    ``feed(source, word)``, for SEND's handshakes.

    Serial mode (``link_bytes`` <= 4: 28 bytes and a 4-byte CRC word are whole words): one
    processor a word wide follows the words as they leave: a header's bytes 0-27, then a
    payload; each time the CRC state loads the CRC as the next 4 bytes and restarts it, so
    it is at its start value when the next header begins (as it is after reset).

    Wide mode (``link_bytes`` >= 8): a payload's CRC also covers the CRC word's ``lb - 4``
    leading zeros, not a whole word. So the processor takes the stream 4 bytes late, after
    4 zero bytes: each word fed is the 4 bytes held from the word before (``hold``), then
    the first ``lb - 4`` of the word sent; CRC_END feeds the last 4 bytes and the zeros.
    Zeros in front leave a CRC register that starts at 0 at 0, and starting at 0xFFFFFFFF is
    the same as starting at 0 with the first 32 message bits inverted: so the processor
    starts at 0 and the first 4 bytes fed after the zeros are inverted. The header, whose
    last word holds its CRC, is fed the same way from the shift register before it leaves
    (HEAD: 32 / lb words, 4 zero bytes then bytes 0-27), and HEAD_CRC puts the CRC in.
    """
    algo = catalog.CRC32_ISO_HDLC
    crc_bytes = protocol.crc_word_bytes(lb)
    if lb <= 4:
        m.submodules.crc = crc = algo(data_width=8 * lb).create()

        def feed(source, word):
            with m.If(source != 3):
                m.d.comb += [crc.valid.eq(1), crc.data.eq(word)]
    else:
        algo = Algorithm(crc_width=algo.crc_width, polynomial=algo.polynomial,
                         initial_crc=0, reflect_input=algo.reflect_input,
                         reflect_output=algo.reflect_output, xor_output=algo.xor_output)
        m.submodules.crc = crc = algo(data_width=8 * lb).create()
        hold = Signal(32)       # the last 4 bytes sent, not yet fed
        first = Signal()        # the next word fed starts a payload

        def feed(source, word):
            with m.If((source == 1) | (source == 2)):
                m.d.comb += [
                    crc.valid.eq(1), crc.start.eq(first),
                    crc.data.eq(Cat(hold, word[:32] ^ first.replicate(32),
                                    word[32:8 * (lb - 4)])),
                ]
                m.d.sync += [hold.eq(word[8 * (lb - 4):]), first.eq(0)]

        prefixed = Cat(Const(0, 32), out[:8 * CRC_AT] ^ 0xFFFFFFFF)
        with m.State("HEAD"):
            m.d.comb += [crc.valid.eq(1), crc.start.eq(idx == 0),
                         crc.data.eq(prefixed.word_select(idx, 8 * lb))]
            m.d.sync += idx.eq(idx + 1)
            with m.If(idx == protocol.HEADER_BYTES // lb - 1):
                m.next = "HEAD_CRC"

        with m.State("HEAD_CRC"):
            m.d.sync += [out[8 * CRC_AT:8 * protocol.HEADER_BYTES].eq(crc.crc), idx.eq(0),
                         hold.eq(0), first.eq(1)]
            m.next = "SEND"

        with m.State("CRC_END"):
            m.d.comb += [crc.valid.eq(1), crc.data.eq(hold)]     # then lb - 4 zero bytes
            m.next = "CRC"

    with m.State("CRC"):
        m.d.comb += crc.start.eq(1)     # serial mode: for the payload or the next header
        load(crc.crc << (8 * (crc_bytes - 4)), 3, crc_bytes // lb)
        m.next = "SEND"
    return feed
