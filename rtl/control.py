"""The device's control interfaces between its blocks: a command's start and sizes, the credit
exchange, the unpacker's per-tile settings, a shared CRC processor's port, and the link's line
error counts. Each is declared from its driver's side."""

from amaranth.lib import wiring
from amaranth.lib.crc import catalog
from amaranth.lib.wiring import In, Out

from systolica.protocol import LINE_COUNT_BITS, Feature

__all__ = ["CrcPortSignature", "CreditSignature", "GemmControlSignature",
           "LineErrorsSignature", "UnpackerControlSignature", "crc_processor"]



class GemmControlSignature(wiring.Signature):
    """The command decoder's side (``Out``) of what the engine and the framer follow.

    Members
    -------
    load_start, gemm_start : one-cycle strobes when a LOAD_A / GEMM starts (its header accepted).
    n, k, m : that command's sizes; ``k_last`` = K - 1 (registered for timing). They hold
        from the strobe until the next command's.
    fmt : (block formats) the GEMM's weight format (`protocol.Format`).
    act_blocks : (block formats) the loaded activations are in 32-blocks.
    tag : the command's tag (`protocol` header byte 3), for its RESULT frames and reply; holds
        like the sizes.
    payload_done : a one-cycle strobe once the GEMM's payload and its CRC word have been taken
        (the GEMM reply waits for it).
    payload_status : with and after ``payload_done``: 0 if the payload arrived intact, else
        the GEMM reply's `protocol.Status` (``BAD_CRC``, ``ABORTED``); holds until the next
        command's strobe.
    stored : (devices with DRAM) at ``gemm_start``: the GEMM is a GEMM_DRAM (its weights come
        from the DRAM, not the link).
    pair : (devices with pair sums, `protocol.Feature`) the GEMM's result rows leave as sums of
        two (`PairSum`); holds like the sizes.
    argmax : (devices with argmax) the GEMM's results leave as their largest's column and value
        (`ArgMax`); holds like the sizes.
    """

    def __init__(self, config):
        super().__init__({
            "load_start": Out(1),
            "gemm_start": Out(1),
            "n": Out(16),
            "k": Out(range(config.max_k + 1)),
            "k_last": Out(range(config.max_k)),
            "m": Out(16),
            "tag": Out(8),
            "payload_done": Out(1),
            "payload_status": Out(4),
            **({"fmt": Out(2), "act_blocks": Out(1)} if config.block_formats else {}),
            **({"stored": Out(1)} if config.dram_mib else {}),
            **({"pair": Out(1)} if Feature.PAIR_SUM in config.features else {}),
            **({"argmax": Out(1)} if Feature.ARGMAX in config.features else {}),
        })


class CreditSignature(wiring.Signature):
    """The link adapter's side (``Out``) of the credit exchange with the framer.

    Members
    -------
    consumed : bytes taken out of the receive buffer so far (modulo 2**32).
    credit_due : a CREDIT frame should be sent (registered; drops with ``credit_sent``).
    credit_sent : in; the framer took ``consumed`` into a CREDIT header this cycle.
    """

    def __init__(self):
        super().__init__({
            "consumed": Out(32),
            "credit_due": Out(1),
            "credit_sent": In(1),
        })


class UnpackerControlSignature(wiring.Signature):
    """The payload router's side (``Out``) of the block unpacker's settings.

    Members
    -------
    fmt : the GEMM's block format; set at least two cycles before its first payload word
        reaches the unpacker, changed only between GEMMs.
    group_blocks : C' (1 .. cols), blocks in each group of the current tile; changed only while
        ``idle``.
    idle : in; nothing buffered and no group begun.
    """

    def __init__(self, cols):
        super().__init__({
            "fmt": Out(2),
            "group_blocks": Out(range(cols + 1)),
            "idle": In(1),
        })


class CrcPortSignature(wiring.Signature):
    """A user's side (``Out``) of a CRC-32 `Processor` shared with another block: the same
    members as the processor's own, so a block drives either the same way.

    Members
    -------
    data : the word to feed (``width`` bits).
    valid : feed ``data`` this cycle.
    start : start over from the CRC's initial value (with ``valid``: ``data`` is the first).
    match_detected : in; the words fed since the start end in the CRC-32 residue. The shared
        processor takes its inputs through a register (`SHARED_CRC_DELAY`): a word fed in one
        cycle counts in ``match_detected`` two cycles later, not one.
    """

    def __init__(self, width):
        super().__init__({
            "data": Out(width),
            "valid": Out(1),
            "start": Out(1),
            "match_detected": In(1),
        })


class LineErrorsSignature(wiring.Signature):
    """The line's side (``Out``) of its error counts, which IDENTIFY reports (a board's UART
    receiver drives them; a link without a line, as the simulated board's, ties them to 0).

    Members
    -------
    framing : bytes dropped for a low stop bit (a wrong baud rate, noise, a BREAK), since
        power-up, saturating at 2**`protocol.LINE_COUNT_BITS` - 1.
    overruns : bytes dropped because the previous one had not been taken, likewise.
    """

    def __init__(self):
        super().__init__({
            "framing": Out(LINE_COUNT_BITS),
            "overruns": Out(LINE_COUNT_BITS),
        })


# Cycles the shared CRC processor's inputs spend in a register (`Decoder`): its enable would
# otherwise end the decoder's word-accept chain, across the die (the ULX3S-25F's critical path).
SHARED_CRC_DELAY = 1


def crc_delay(component):
    """Extra cycles before ``component``'s CRC result counts the last word it fed: the shared
    processor's `SHARED_CRC_DELAY`, or 0 with a processor of its own."""
    return SHARED_CRC_DELAY if "crc" in component.signature.members else 0


def crc_processor(m, component, width):
    """The CRC-32 `Processor` ``component`` feeds: through its ``crc`` port (`CrcPortSignature`)
    one outside, shared, if it has the port; else one of its own (``m.submodules.crc``)."""
    if "crc" in component.signature.members:
        return component.crc
    m.submodules.crc = crc = catalog.CRC32_ISO_HDLC(data_width=width).create()
    return crc
