"""The table of formal checks: what `tests/test_formal.py` runs at short depths and
``python -m systolica.sim.formal`` at long ones.

Each check builds a spec (one of `formal_streams`, `formal_credit`, `formal_array`) at a small
configuration: the properties do not depend on the buffers' sizes, and small ones keep the
solver fast and let a short run reach the host's credit limit. ``cover`` checks show that the
states the properties speak of are reached within the depth (so a pass is not vacuous).
"""

import dataclasses
import functools
from collections.abc import Callable

from systolica.config import Config

from .formal_array import ArraySums
from .formal_credit import AcceleratorCredit
from .formal_streams import AcceleratorStreams

__all__ = ["CHECKS", "CONFIGS", "Check", "by_name"]


def _config(rows, cols, link_bytes):
    # The receive FIFO at the protocol's least (64 bytes), the buffers tiny, int8 only (the
    # GGUF block datapath is far larger), an idle abort soon enough to happen within a run.
    return Config(rows=rows, cols=cols, link_bytes=link_bytes, act_depth=4, max_k=4,
                  rx_fifo_words=64 // link_bytes, formats=("int8",), abort_cycles=16)


CONFIGS = {
    "1x1-l1": _config(1, 1, 1),     # a UART's link: one byte a cycle
    "1x1-l8": _config(1, 1, 8),     # 8 words of FIFO: full within a short run
    "2x2-l4": _config(2, 2, 4),
    # The GGUF block datapath too (the unpacker, the binary32 scale stage): K in 32-blocks.
    "1x1-l4-gguf": dataclasses.replace(_config(1, 1, 4), act_depth=32, max_k=32,
                                       formats=("int8", "q8_0", "q4_0", "q4_1")),
}


@dataclasses.dataclass(frozen=True)
class Check:
    """One formal check. ``short_depth`` None: not in the test suite."""

    name: str
    summary: str
    build: Callable
    mode: str
    short_depth: int | None
    long_depth: int


def _streams(config):
    return functools.partial(AcceleratorStreams, CONFIGS[config])


def _credit(config, **kw):
    return functools.partial(AcceleratorCredit, CONFIGS[config], **kw)


def _array(**kw):
    return functools.partial(ArraySums, **kw)


_EXACT = dict(bubbles=False, earlier_tile=False, reference="operands")

CHECKS = (
    Check("streams-1x1-l1", "Accelerator 1x1, 1-byte link: link_tx keeps the stream rules "
          "(valid held until ready, word stable) for any host keeping them on link_rx; "
          "k-induction: for all time", _streams("1x1-l1"), "prove", 4, 8),
    Check("streams-1x1-l1-cover", "... and the host holds link_tx off, a CREDIT is sent",
          _streams("1x1-l1"), "cover", 14, 14),
    Check("streams-2x2-l4", "the same, Accelerator 2x2 with a 4-byte link",
          _streams("2x2-l4"), "prove", 4, 8),
    Check("streams-1x1-l8", "the same, Accelerator 1x1 with an 8-byte link",
          _streams("1x1-l8"), "prove", None, 8),
    Check("streams-1x1-l4-gguf", "the same, Accelerator 1x1, 4-byte link, every GGUF block "
          "format (the block datapath)", _streams("1x1-l4-gguf"), "prove", None, 4),
    Check("credit-1x1-l8", "Accelerator 1x1, 8-byte link, 8-word FIFO: a host within its "
          "credit is never refused; consumed (CREDIT) <= words read out of the FIFO",
          _credit("1x1-l8"), "bmc", 14, 24),
    Check("credit-1x1-l8-cover", "... and the host reaches its credit, a CREDIT is sent",
          _credit("1x1-l8"), "cover", 13, 13),
    Check("credit-1x1-l8-any-host", "the same for a host that ignores its credit (ready "
          "asserted only for words within it)", _credit("1x1-l8", host_keeps_credit=False),
          "bmc", None, 20),
    Check("credit-2x2-l4", "the same, Accelerator 2x2, 4-byte link, 16-word FIFO",
          _credit("2x2-l4"), "bmc", None, 26),
    Check("credit-1x1-l1", "the same, Accelerator 1x1, 1-byte link, 64-word FIFO",
          _credit("1x1-l1"), "bmc", None, 40),
    Check("array-2x2-k3", "SystolicArray 2x2: any int8 A, W, any K <= 3, bubbles, a tile "
          "before: results = sum of the products driven, done after the latency",
          _array(max_k=3), "bmc", 9, 10),
    Check("array-2x2-k3-cover", "... and the results of a K = 3 tile are read",
          _array(max_k=3), "cover", 9, 9),
    Check("array-2x2-exact-k1", "SystolicArray 2x2, K = 1, no bubbles: results = "
          "sum A[r,k] W[k,c] of the AnyConst operands (complete)",
          _array(max_k=1, k=1, **_EXACT), "bmc", None, 6),
    Check("array-2x2-exact-k4", "the same with K = 4 (complete at depth 9)",
          _array(max_k=4, k=4, **_EXACT), "bmc", 9, 9),
    Check("array-1x1-exact-lut", "one PE with the shift-and-add multiplier ('lut', for "
          "parts short of DSPs): its product = a*w for every int8 pair",
          _array(rows=1, cols=1, max_k=1, k=1, multiplier="lut", **_EXACT), "bmc", None, 4),
    Check("array-3x2-k2", "SystolicArray 3x2 (rows not a power of two): any K <= 2, "
          "bubbles, a tile before", _array(rows=3, cols=2, max_k=2), "bmc", None, 12),
    Check("array-2x2-k2-pairs", "SystolicArray 2x2, any K <= 2, bubbles, a tile before, "
          "PEs sharing pair multipliers ('pairs', the iCE40's)",
          _array(max_k=2, multiplier="pairs"), "bmc", None, 10),
    Check("array-2x2-k2-registered", "the same with two-cycle multipliers ('registered', "
          "the ECP5's)", _array(max_k=2, multiplier="registered"), "bmc", None, 11),
)


def by_name(name):
    """The check called ``name``."""
    for check in CHECKS:
        if check.name == name:
            return check
    raise KeyError(name)
