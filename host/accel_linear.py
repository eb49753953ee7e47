"""Linear layers on the accelerator.

* `BlockLinear` (the default): the weights' GGUF blocks go to the device exactly as they sit in
  the file (or are already in its DRAM: ``resident``); activations are quantized in 32-blocks;
  the device applies every scale and returns binary32. Each call is checked bit for bit against
  `block_formats.block_gemm_reference` on the file's blocks.
* `AcceleratorLinear` (W8A8): int8 weights per channel, int8 activations per token; the device
  does the integer GEMM, the host the scales. Each call's int32 sums are checked against numpy.

Both are called as ``linear(x, tensor_name)`` (see `systolica.host.llama`), for a layer's weights
and for the LM head alike, and compare the float result with the float reference (gguf.quants
dequantization) on the same input (`BlockLinear` optionally: its ``float_check``). `BlockLinear`
can also have the device send only the largest result of one row (``argmax``: an LM head's
greedy token without its logits).
"""

import dataclasses
import time

import numpy as np

from systolica.fp32_model import f32_add, f32_order_key
from systolica.protocol import Feature

from . import block_formats
from .quant import quantize_activations, quantize_weights

__all__ = ["DEFAULT_TERMS", "AcceleratorLinear", "BlockLinear", "LinearRecord", "bit_exact",
           "block_format", "compare", "split_tensor_name"]

# Int8 terms per activation on the block datapath (see `BlockLinear`): two keep the logits within
# cosine 0.9999 of the float model where one term's rounding noise alone costs up to 0.995.
DEFAULT_TERMS = 2


def compare(got, want):
    """(max abs error, cosine similarity) of two arrays."""
    got = np.asarray(got, dtype=np.float64).ravel()
    want = np.asarray(want, dtype=np.float64).ravel()
    denom = np.linalg.norm(got) * np.linalg.norm(want)
    cosine = float(got @ want / denom) if denom else float(np.array_equal(got, want))
    return float(np.max(np.abs(got - want))), cosine


def block_format(model_file, name):
    """The `block_formats.BlockFormat` tensor ``name`` of ``model_file`` is stored in."""
    qtype = model_file.quant_type(name)
    for fmt in block_formats.FORMATS.values():
        if fmt.ggml_type == qtype:
            return fmt
    raise ValueError(f"{name} is stored as GGML type {qtype}, which the device's block "
                     f"datapath does not take (it takes {', '.join(block_formats.FORMATS)})")


def split_tensor_name(tensor):
    """``"blk.3.attn_q.weight"`` → (3, "attn_q"); a tensor outside the layers, e.g. the LM head
    ``"token_embd.weight"`` → (None, "token_embd")."""
    parts = tensor.split(".")
    if len(parts) == 4 and parts[0] == "blk" and parts[1].isdigit() and parts[3] == "weight":
        return int(parts[1]), parts[2]
    return None, tensor.removesuffix(".weight")


@dataclasses.dataclass
class LinearRecord:
    """One linear call on the device: its shape, checks, what it streamed and where its time
    went (``wall`` is the driver's GEMM call; the ``*_seconds`` are host work around it)."""

    layer: int | None         # None for a tensor outside the layers (the LM head)
    weight: str               # e.g. "attn_q", or "token_embd" for the tied LM head
    n: int
    k: int
    m: int
    exact: bool
    max_abs_error: float      # nan when the float reference was not computed
    cosine: float             # nan likewise
    device_cycles: int
    bytes_out: int
    bytes_in: int
    wall: float
    quantize_seconds: float = 0.0      # quantizing the activations
    exact_seconds: float = 0.0         # the bit-exact (or integer) reference check
    float_seconds: float = 0.0         # the float reference and its comparison
    stored_bytes: int = 0     # the weights' stored payloads in the device's DRAM (0: streamed)
    dram_bytes: int = 0       # bytes its GEMM_DRAMs read from the DRAM (payloads, CRC words)
    pair_sum: bool = False    # the device added the two terms' results (`protocol.PAIR_SUM`)
    argmax: bool = False      # only the largest result's column and value came back


def _record(tensor, x_shape, m, exact, max_err, cosine, stats, before, wall, **seconds):
    """A `LinearRecord`; ``before`` holds (device cycles, bytes out, bytes in) at the start."""
    layer, weight = split_tensor_name(tensor)
    return LinearRecord(
        layer=layer, weight=weight, n=x_shape[0], k=x_shape[1], m=m, exact=exact,
        max_abs_error=max_err, cosine=cosine, device_cycles=stats.device_cycles - before[0],
        bytes_out=stats.bytes_out - before[1], bytes_in=stats.bytes_in - before[2], wall=wall,
        **seconds)


class AcceleratorLinear:
    """``linear(x, tensor_name)`` computed on the device behind ``driver`` (W8A8).

    Parameters
    ----------
    driver : Driver
    model_file : ModelFile
        Source of the weights (dequantized from the GGUF, then quantized to int8 per channel).
    """

    name = "accelerator (W8A8: int8 weights per channel, int8 activations per token)"

    def __init__(self, driver, model_file):
        self.driver = driver
        self.model_file = model_file
        self.records = []
        self._weights = {}

    def _quantized(self, name):
        if name not in self._weights:
            wq, scale = quantize_weights(self.model_file.dequantized(name))
            self._weights[name] = (np.ascontiguousarray(wq.T), scale.T)   # (in, out), (1, out)
        return self._weights[name]

    def __call__(self, x, tensor):
        w_t, w_scale = self._quantized(tensor)
        t0 = time.perf_counter()
        xq, x_scale = quantize_activations(x)
        stats = self.driver.stats
        before = (stats.device_cycles, stats.bytes_out, stats.bytes_in)
        t1 = time.perf_counter()
        acc = self.driver.gemm(xq, w_t)
        t2 = time.perf_counter()
        exact = np.array_equal(acc, xq.astype(np.int64) @ w_t.astype(np.int64))
        t3 = time.perf_counter()
        y = acc.astype(np.float32) * x_scale * w_scale
        reference = x @ self.model_file.dequantized(tensor).T
        max_err, cosine = compare(y, reference)
        t4 = time.perf_counter()
        self.records.append(_record(tensor, xq.shape, w_t.shape[1], exact, max_err, cosine,
                                    stats, before, t2 - t1, quantize_seconds=t1 - t0,
                                    exact_seconds=t3 - t2, float_seconds=t4 - t3))
        return y


class BlockLinear:
    """``linear(x, tensor_name)`` on the device's block datapath, weights straight from the GGUF
    file (memory-mapped; never re-quantized), in whatever block format the file stores each
    tensor (SmolLM2: Q4_1 layers, a Q8_0 LM head).

    Every call is checked bit for bit against `block_formats.block_gemm_reference` (``exact`` in
    its `LinearRecord`).

    Parameters
    ----------
    driver : Driver
    model_file : ModelFile
    float_check : bool
        Also compute the float reference ``x @ dequantized.T`` on every call and record its max
        error and cosine (default). Without it those are nan: for callers that compare with the
        float model as a whole (``systolica generate``).
    defer_check : bool
        Run the bit-exact check on a worker thread while the next GEMMs run on the device (the
        simulated board is another process: the check then costs no wall time of its own);
        `settle` waits for every pending check. Records' ``exact`` is None until then.
    exact_check : bool
        Check every call bit for bit against the block model (default). Off where the driver
        is itself an exact model of the device (`systolica.host.quality`).
    terms : int
        Int8 terms per activation (`block_formats.quantize_activation_terms`): 1 sends each
        activation row once; 2 (about 15 bits) sends it and its quantized remainder as two rows of
        one GEMM and adds the two binary32 results on the host. A decode step's second row costs
        no device cycles on an array of two or more rows (it uses a row that would idle).
    resident : mapping, optional
        Tensor name → `stored_weights.StoredWeights`: weights already in the device's DRAM
        (`resident_weights.upload`), multiplied with GEMM_DRAMs instead of streamed; a tensor
        not in it streams. The bit-exact check still uses the file's blocks. With two terms
        on a device that reports `protocol.Feature.PAIR_SUM`, a resident tensor's GEMM_DRAMs
        have the device add each activation's two term results (`Driver.gemm_blocks`'
        ``pair_sum``), so only the sums cross the link; the check then compares them with
        ``f32_add`` of the two terms' reference results (``pair_sum`` in the `LinearRecord`).
        `argmax` has the device find the largest result of one row of a resident tensor
        (`can_argmax`).
    """

    def __init__(self, driver, model_file, *, float_check=True, defer_check=False,
                 terms=DEFAULT_TERMS, exact_check=True, resident=None):
        self.driver = driver
        self.model_file = model_file
        self.float_check = float_check
        self.exact_check = exact_check
        if terms not in (1, 2):
            raise ValueError(f"terms must be 1 or 2, not {terms!r}")
        self.terms = terms
        self.resident = dict(resident or {})
        # Resident tensors' two terms are added on the device where it can (`protocol.PAIR_SUM`).
        self.pair_sum = bool(self.resident) and terms == 2 and (
            Feature.PAIR_SUM in driver.config.features)
        where = "resident in the device's DRAM" if self.resident else "as in the file"
        two = ""
        if terms == 2:
            two = ", two terms each" + (" summed on the device" if self.pair_sum else "")
        self.name = (f"accelerator (native GGUF blocks: weights {where}, activations int8 "
                     f"in 32-blocks{two}, scales applied on the device in binary32)")
        self.records = []
        self._pool = None
        self._pending = []
        if defer_check:
            import concurrent.futures

            self._pool = concurrent.futures.ThreadPoolExecutor(1, "bit-exact-check")
        self.weights = 0          # weights streamed (for bytes per weight)

    def format_of(self, name):
        return block_format(self.model_file, name)

    def __call__(self, x, tensor):
        fmt = self.format_of(tensor)
        raw = self.model_file.raw(tensor)
        t0 = time.perf_counter()
        xq, xd = block_formats.quantize_activation_terms(x, self.terms)
        stats = self.driver.stats
        before = (stats.device_cycles, stats.bytes_out, stats.bytes_in)
        stored = self.resident.get(tensor)
        pair = stored is not None and self.pair_sum
        dram_bytes = 0
        if stored is not None:      # each row block of the activations reads them all
            n_step = self.driver.plan(xq.shape[0], xq.shape[1], stored.m, fmt, pair_sum=pair)[0]
            dram_bytes = -(-xq.shape[0] // n_step) * stored.size
        t1 = time.perf_counter()
        if pair:        # each row's two terms side by side (rows 2t, 2t+1); the device adds them
            order = np.arange(xq.shape[0]).reshape(2, -1).T.ravel()
            y = y_rows = self.driver.gemm_blocks(xq[order], xd[order], stored, fmt,
                                                 pair_sum=True)
        else:
            y_rows = self.driver.gemm_blocks(xq, xd, raw if stored is None else stored, fmt)
            y = y_rows[:x.shape[0]]
            for t in range(1, self.terms):
                y = y + y_rows[t * x.shape[0]:(t + 1) * x.shape[0]]
        t2 = time.perf_counter()
        exact = None
        if self._pool is None and self.exact_check:
            exact = bit_exact(y_rows, xq, xd, raw, fmt, pair_sum=pair)
        t3 = time.perf_counter()
        max_err = cosine = float("nan")
        if self.float_check:
            max_err, cosine = compare(y, x @ self.model_file.dequantized(tensor).T)
        t4 = time.perf_counter()
        self.weights += raw.shape[0] * xq.shape[1]
        self.records.append(_record(tensor, xq.shape, raw.shape[0], exact, max_err, cosine,
                                    stats, before, t2 - t1, quantize_seconds=t1 - t0,
                                    exact_seconds=t3 - t2, float_seconds=t4 - t3,
                                    stored_bytes=0 if stored is None else stored.size,
                                    dram_bytes=dram_bytes, pair_sum=pair))
        if self._pool is not None and self.exact_check:
            self._pending.append(self._pool.submit(self._check, self.records[-1], y_rows, xq,
                                                   xd, raw, fmt))
        return y

    def can_argmax(self, tensor):
        """Whether `argmax` can run for ``tensor``: it is resident, the device reports
        `protocol.Feature.ARGMAX`, and an activation row's results come back as one row (one
        term, or two that the device adds: ``pair_sum``)."""
        return (tensor in self.resident and Feature.ARGMAX in self.driver.config.features
                and (self.terms == 1 or self.pair_sum))

    def argmax(self, x, tensor):
        """``(column, value)`` of the largest of ``x · Wᵀ`` for one activation row ``x`` (1, K),
        found by the device (`Driver.argmax_blocks`): the row's results do not cross the link.

        ``x`` is quantized, and its terms interleaved, exactly as `__call__` does it, so the
        row the device compares is the one `__call__` would return, bit for bit: ``column`` is
        its first largest (as numbers, -0 equal to +0), ``value`` (np.float32) that result.
        The call is recorded (``argmax`` in its `LinearRecord`; no float comparison: max error
        and cosine are nan) and checked: ``exact`` says whether both are the block model's
        (deferred like `__call__`'s with ``defer_check``). ValueError unless `can_argmax`
        and ``x`` is one row.
        """
        if not self.can_argmax(tensor):
            raise ValueError(f"argmax of {tensor}: it needs the tensor resident in the device's "
                             "DRAM, a device that reports Feature.ARGMAX, and one term per "
                             "activation or two summed on the device (can_argmax)")
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != 1:
            raise ValueError(f"x must be one activation row, shape (1, K), not {x.shape}")
        fmt = self.format_of(tensor)
        raw = self.model_file.raw(tensor)
        stored = self.resident[tensor]
        t0 = time.perf_counter()
        xq, xd = block_formats.quantize_activation_terms(x, self.terms)
        stats = self.driver.stats
        before = (stats.device_cycles, stats.bytes_out, stats.bytes_in)
        pair = self.pair_sum          # two terms: the device adds them (`can_argmax`)
        t1 = time.perf_counter()
        order = np.arange(xq.shape[0]).reshape(2, -1).T.ravel() if pair else slice(None)
        column, value = self.driver.argmax_blocks(xq[order], xd[order], stored, pair_sum=pair)
        t2 = time.perf_counter()
        found = (column, int(np.float32(value).view(np.uint32)))
        exact = None
        if self._pool is None and self.exact_check:
            exact = _argmax_exact(found, xq, xd, raw, fmt, pair_sum=pair)
        t3 = time.perf_counter()
        self.weights += raw.shape[0] * xq.shape[1]
        self.records.append(_record(tensor, xq.shape, raw.shape[0], exact, float("nan"),
                                    float("nan"), stats, before, t2 - t1,
                                    quantize_seconds=t1 - t0, exact_seconds=t3 - t2,
                                    stored_bytes=stored.size, dram_bytes=stored.size,
                                    pair_sum=pair, argmax=True))
        if self._pool is not None and self.exact_check:
            self._pending.append(self._pool.submit(self._check, self.records[-1], found, xq,
                                                   xd, raw, fmt))
        return column, value

    @staticmethod
    def _check(record, y, xq, xd, raw, fmt):
        started = time.perf_counter()
        check = _argmax_exact if record.argmax else bit_exact
        record.exact = check(y, xq, xd, raw, fmt, pair_sum=record.pair_sum)
        record.exact_seconds = time.perf_counter() - started

    def settle(self):
        """Wait for the deferred bit-exact checks (a no-op without ``defer_check``)."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()


def _reference_rows(xq, xd, raw, fmt, pair_sum):
    """The block model's binary32 patterns of the term rows ``xq``, ``xd`` (rows t·N + r of
    term t); with ``pair_sum``, the `fp32_model.f32_add` of the two terms' (N rows)."""
    want = block_formats.block_gemm_reference(xq, xd, raw, fmt)
    if pair_sum:
        n = want.shape[0] // 2
        want = f32_add(want[:n], want[n:])
    return want


def bit_exact(y, xq, xd, raw, fmt, *, pair_sum=False):
    """Whether the device's ``y`` is bit for bit the block model's result of the term rows
    ``xq``, ``xd`` (rows t·N + r of term t); with ``pair_sum``, ``y`` (N rows) is the device's
    sums of the two terms' results, compared with their `fp32_model.f32_add`."""
    return bool(np.array_equal(y.view(np.uint32), _reference_rows(xq, xd, raw, fmt, pair_sum)))


def _argmax_exact(found, xq, xd, raw, fmt, *, pair_sum=False):
    """Whether the device's ``found`` (column, binary32 pattern) is the block model's one
    result row's largest (`fp32_model.f32_order_key`: -0 equal to +0; the first of equal ones)
    and its pattern; the row as `bit_exact` computes it."""
    (want,) = _reference_rows(xq, xd, raw, fmt, pair_sum)
    column = int(np.argmax(f32_order_key(want)))
    return found == (column, int(want[column]))
