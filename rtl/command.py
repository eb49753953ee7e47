"""What the header parser hands the payload router: one accepted LOAD_A or GEMM, and its end."""

from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .dram_access import dram_count_width

__all__ = ["CommandSignature", "command_layout"]


def command_layout(config):
    """An accepted command, as the payload router needs it.

    load : 1 for LOAD_A (activation vectors follow), 0 for GEMM (weights follow).
    size : LOAD_A's N (rows of A) or GEMM's M (columns of W): what the tiles are cut from.
    k_last : K - 1 (vectors a tile).
    blocks : the activations are in 32-blocks (LOAD_A: this one; GEMM: the loaded A).
    fmt : GEMM's weight format (`protocol.Format`); 0 for LOAD_A.
    store : (devices with DRAM) WRITE_DRAM or DRAM_CHECK: ``words`` + 1 payload words go to the
        DRAM writer (or, from the DRAM, nowhere: DRAM_CHECK), then the CRC word.
    words : (devices with DRAM) see ``store``.
    """
    return data.StructLayout({
        "load": 1,
        "size": 16,
        "k_last": range(config.max_k),
        "blocks": 1,
        "fmt": 2,
        **({"store": 1, "words": dram_count_width(config)} if config.dram_mib else {}),
    })


class CommandSignature(wiring.Signature):
    """The header parser's side (``Out``) of its link to the payload router.

    Members
    -------
    cmd : stream of `command_layout` (parser to router). The router takes one when it is idle;
        the parser parses no header until that command's payload has passed.
    done : in; a one-cycle strobe the cycle after the command's payload and its CRC word have
        been taken.
    bad_crc : in; with ``done``: the payload's CRC word was wrong.
    bad_scale : in; with ``done`` of a LOAD_A in 32-blocks: a scale vector held an inf or NaN.
    """

    def __init__(self, config):
        super().__init__({
            "cmd": Out(stream.Signature(command_layout(config))),
            "done": In(1),
            "bad_crc": In(1),
            "bad_scale": In(1),
        })
