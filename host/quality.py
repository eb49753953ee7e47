"""What each bit buys: fidelity of the model in each weight format and activation scheme the
device carries, on real text, next to what the format costs in link bytes and tokens/s.

The baseline is the model file as it is (Q4_1 layers, a Q8_0 LM head) with float activations:
the file holds no higher-precision weights. The other weight formats are re-quantized with
`gguf.quants` from the file's own (dequantized) weights; the embedding lookup and the norms stay
the file's. Every row runs the device's exact arithmetic in numpy, not an approximation of it:

* block formats: `BlockLinear` as on the device (activations in 32-blocks, one or two int8
  terms), its GEMMs computed by `block_formats.block_gemm_native`, bit-exact with the device's
  block model;
* int8 W8A8: `AcceleratorLinear` as on the device, its integer GEMM exact in numpy;
* float activations: ``x @ Wᵀ`` with the row's dequantized weights (what the weight format alone
  costs).

The text is Python's own reference documentation (``pydoc_data.topics``, shipped with every
Python): its topics in sorted order, tokenized once, cut into windows of a fixed length at a
fixed stride, the same windows for every row. Per row: perplexity over the windows' next-token
predictions, mean KL divergence of the next-token distribution from the baseline's, top-1
agreement with the baseline, the bytes per weight of a real GEMM frame at a board's 1-byte
link (headers and padding included), and the link-bound decode tokens/s on each catalog board
that carries the format.

With the weights resident in the DRAM of the catalog's board with DRAM (`projection.DRAM_BOARD`)
a row's decode token reads its stored GEMM payloads (`resident_bytes`: every device linear laid
out as `resident_weights.place` lays out the file's, in the row's format) and the link carries
only activations, headers and results. `resident_projection` derives the row's token from one
measured generate with resident weights (`projection.run_figures`, in the file's formats): its
device cycles scale with the DRAM bytes the row reads, since every format is bound by the DRAM
there (8 bytes a cycle at most: 14.2 Q4_0 weights a cycle, under the array's 16), and its link
bytes are the measured ones.
"""

import dataclasses

import numpy as np

from .accel_linear import AcceleratorLinear, BlockLinear, block_format
from .block_formats import block_gemm_native
from .driver import DriverStats
from .llama import LINEARS, FloatLinear, LlamaModel, device_linears, layer_tensor
from .projection import DRAM_BOARD, project_resident
from .requantized import Requantized

__all__ = [
    "ROWS",
    "QualityRow",
    "RowResult",
    "decode_bytes_per_weight",
    "evaluate",
    "resident_bytes",
    "resident_projection",
    "text_windows",
    "weights_per_token",
]


@dataclasses.dataclass(frozen=True)
class QualityRow:
    name: str
    weights: str        # "file", or a re-quantized format: "q8_0", "q4_0", "q4_1", "int8"
    activations: str    # "float", "int8 per token", "int8 32-blocks", "2 x int8 32-blocks"

    @property
    def changes(self):
        """Which of the two this row changes against the baseline."""
        parts = [p for p, changed in (("weights", self.weights != "file"),
                                      ("activations", self.activations != "float")) if changed]
        return " + ".join(parts) or "nothing (baseline)"


ROWS = [
    QualityRow("file, float", "file", "float"),
    QualityRow("file, A8 blocks", "file", "int8 32-blocks"),
    QualityRow("file, 2xA8 blocks", "file", "2 x int8 32-blocks"),
    QualityRow("q8_0, float", "q8_0", "float"),
    QualityRow("q8_0, A8 blocks", "q8_0", "int8 32-blocks"),
    QualityRow("q4_1, float", "q4_1", "float"),
    QualityRow("q4_1, A8 blocks", "q4_1", "int8 32-blocks"),
    QualityRow("q4_0, float", "q4_0", "float"),
    QualityRow("q4_0, A8 blocks", "q4_0", "int8 32-blocks"),
    QualityRow("int8/ch, float", "int8", "float"),
    QualityRow("int8/ch, A8/token", "int8", "int8 per token"),
]


@dataclasses.dataclass
class RowResult:
    row: QualityRow
    perplexity: float
    kl: float                 # mean KL(baseline || row) of the next-token distributions, nats
    top1: float               # fraction of positions whose arg max equals the baseline's
    bytes_per_weight: float   # a decode step's GEMM frames at a 1-byte link, over its weights
    tokens_per_s: dict        # board name → link-bound decode tokens/s (boards carrying it)
    resident: object = None   # `projection.ResidentProjection` with the weights in DRAM, or None


def text_windows(tokenizer, count, length):
    """``count`` windows of ``length`` token ids from Python's reference documentation."""
    import pydoc_data.topics

    topics = pydoc_data.topics.topics
    text = "\n\n".join(topics[key] for key in sorted(topics))
    ids = tokenizer.encode(text).ids
    if count < 1 or length < 2:
        raise ValueError(f"need at least 1 window of at least 2 tokens, not {count} x {length}")
    if count * length > len(ids):
        raise ValueError(f"{count} windows of {length} tokens need {count * length} tokens; the "
                         f"text has {len(ids)}")
    stride = len(ids) // count
    return [ids[i * stride:i * stride + length] for i in range(count)]


class _ModelDriver:
    """The device's GEMMs computed exactly in numpy (stands where a `Driver` would)."""

    def __init__(self):
        self.stats = DriverStats()

    def gemm(self, a, w):
        # |sums| < 127 * 128 * K: exact in float64 for any K the model has.
        return (a.astype(np.float64) @ w.astype(np.float64)).astype(np.int64)

    def gemm_blocks(self, xq, xd, raw, fmt):
        return block_gemm_native(xq, xd, raw, fmt).view(np.float32)


def _linear(row, model_file, sources):
    if row.weights == "int8":
        if row.activations == "float":
            return _W8Float(model_file)
        return AcceleratorLinear(_ModelDriver(), model_file)
    source = model_file
    if row.weights != "file":
        source = sources.setdefault(row.weights, Requantized(model_file, row.weights))
    if row.activations == "float":
        return FloatLinear(source)
    terms = 2 if row.activations.startswith("2 x") else 1
    return BlockLinear(_ModelDriver(), source, float_check=False, terms=terms, exact_check=False)


class _W8Float:
    """int8 per-channel weights (from the file's weights, as `AcceleratorLinear` makes them)
    with float activations."""

    def __init__(self, model_file):
        self.file = model_file
        self._cache = {}

    def __call__(self, x, tensor):
        from .quant import quantize_weights

        if tensor not in self._cache:
            q, scale = quantize_weights(self.file.dequantized(tensor))
            self._cache[tensor] = (q.astype(np.float32) * scale).T
        return x @ self._cache[tensor]


def _log_softmax(logits):
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def decode_bytes_per_weight(model_file, config, *, source=None, int8=False):
    """Bytes a decode step's GEMM frames put on the link at ``config``, over its weights: the
    weights of ``source`` (default: the model file) in their block formats, or in int8 W8A8."""
    from .frames import gemm_blocks_command, gemm_command
    from .quant import quantize_weights

    source = source or model_file
    p = model_file.params
    names = [layer_tensor(0, w) for w in LINEARS] + ["token_embd.weight"]
    counts = [p.n_layers] * len(LINEARS) + [1]
    sent = weights = 0
    for name, count in zip(names, counts, strict=True):
        m, k = model_file.tensor_shape(name)
        if int8:
            wq, _ = quantize_weights(model_file.dequantized(name))
            frame = gemm_command(np.ascontiguousarray(wq.T), 1, config)
        else:
            frame = gemm_blocks_command(source.raw(name), block_format(source, name), 1, config)
        sent += count * len(frame)
        weights += count * m * k
    return sent / weights


def resident_bytes(config, model_file, *, source=None, int8=False):
    """DRAM bytes a decode token reads with the weights resident on a device of ``config``: the
    stored GEMM payloads of every device linear (`resident_weights.lay_out`, as `place` lays
    them out), of ``source``'s weights (default: the model file) in their block formats, or in
    int8 W8A8."""
    from .quant import quantize_weights
    from .resident_weights import lay_out

    source = source or model_file
    roomy = dataclasses.replace(config, dram_mib=2048)      # as `place` sizes them
    at = 0
    for name in device_linears(model_file):
        if int8:
            wq, _ = quantize_weights(model_file.dequantized(name))
            stored, _ = lay_out(roomy, np.ascontiguousarray(wq.T), "int8", at)
        else:
            stored, _ = lay_out(roomy, source.raw(name), block_format(source, name), at)
        at = stored.end
    return at


def resident_projection(figures, rate, dram_bytes, *, board=DRAM_BOARD):
    """The `projection.ResidentProjection` of a decode token on ``board`` that reads
    ``dram_bytes`` from its DRAM, derived from ``figures`` (`projection.run_figures` of a
    generate with resident weights on a device with the `dram_rate.DramRate` ``rate``): the
    measured device cycles per DRAM byte times ``dram_bytes``, and the measured link bytes."""
    cycles = figures["cycles"] * dram_bytes / figures["dram_bytes"]
    return project_resident(
        cycles, dram_bytes, figures["link_bytes"], rate, board=board,
        source=f"device cycles scaled by DRAM bytes from {figures['cycles']:,.0f} cycles for "
               f"{figures['dram_bytes'] / 1e6:.2f} MB measured {figures['what']}")


def evaluate(model_file, windows, rows=ROWS, *, progress=None, resident=None):
    """A `RowResult` per row of ``rows`` over the token-id ``windows``. ``progress(row, i)`` is
    called before each window of each row. ``resident``: (`projection.run_figures`,
    `dram_rate.DramRate`) measured on the simulated board with DRAM, for each row's
    `resident_projection` on `projection.DRAM_BOARD`; None leaves those out."""
    from systolica.boards.catalog import BOARDS
    from systolica.boards.report import link_bytes_per_s
    from systolica.config import Config

    sources = {}
    stored = {}             # weight format → `resident_bytes`
    base_model = LlamaModel(model_file, FloatLinear(model_file))
    base = []
    results = []
    for row in rows:
        linear = _linear(row, model_file, sources)
        model = LlamaModel(model_file, linear)
        nll = kl = agree = positions = 0.0
        for i, ids in enumerate(windows):
            if progress:
                progress(row, i)
            if len(base) <= i:
                base.append(_log_softmax(base_model.logits(ids)[:-1]))
            ref = base[i]
            got = _log_softmax(model.logits(ids)[:-1])
            targets = np.asarray(ids[1:])
            nll -= got[np.arange(len(targets)), targets].sum()
            kl += (np.exp(ref) * (ref - got)).sum()
            agree += (got.argmax(axis=-1) == ref.argmax(axis=-1)).sum()
            positions += len(targets)
        bpw = decode_bytes_per_weight(model_file, Config(link_bytes=1),
                                      source=sources.get(row.weights), int8=row.weights == "int8")
        fmt = "int8" if row.weights == "int8" else row.weights
        tokens = {}
        for name, board in BOARDS.items():
            carried = board.config.formats
            if (fmt == "file" and {"q4_1", "q8_0"} <= set(carried)) or fmt in carried:
                per_token = weights_per_token(model_file)
                tokens[name] = link_bytes_per_s(board.baudrate) / (bpw * per_token)
        projected = None
        if resident is not None:
            if row.weights not in stored:       # once per weight format, not once per row
                stored[row.weights] = resident_bytes(
                    BOARDS[DRAM_BOARD].config, model_file, source=sources.get(row.weights),
                    int8=fmt == "int8")
            projected = resident_projection(*resident, stored[row.weights])
        results.append(RowResult(row, float(np.exp(nll / positions)), float(kl / positions),
                                 float(agree / positions), bpw, tokens, projected))
    return results


def weights_per_token(model_file):
    """Weights a decode step streams: every linear of every layer and the LM head."""
    p = model_file.params
    per_layer = sum(np.prod(model_file.tensor_shape(layer_tensor(0, w))) for w in LINEARS)
    return int(p.n_layers * per_layer + np.prod(model_file.tensor_shape("token_embd.weight")))
