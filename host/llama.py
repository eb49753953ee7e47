"""A numpy Llama decoder (RMSNorm, grouped-query attention with RoPE in the GGUF's convention,
causal softmax, SwiGLU FFN, the LM head) whose every linear, the LM head included, runs through
one pluggable backend: numpy float, or the accelerator.

A linear is ``linear(x, tensor_name) -> y``: x float32 (N, K), y float32 (N, M), the tensor the
GGUF name of the weight, e.g. ``"blk.3.attn_q.weight"``, or the LM head (``"output.weight"``, or
``"token_embd.weight"`` where the head is tied to the embedding as in SmolLM2).
"""

import numpy as np

from .kv_cache import KVCache

__all__ = ["LINEARS", "FloatLinear", "KVCache", "LlamaModel", "context_length", "device_linears",
           "head_tensor", "layer_tensor", "rope"]

# The seven linear weights of a layer, in the order a layer uses them.
LINEARS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def context_length(model_file):
    """The context length (tokens) the model file declares (``llama.context_length``)."""
    return int(model_file.field("llama.context_length"))


def layer_tensor(layer, weight):
    """The GGUF tensor name of ``weight`` (one of `LINEARS`) in decoder layer ``layer``."""
    return f"blk.{layer}.{weight}.weight"


def head_tensor(model_file):
    """The LM head's tensor: ``output.weight``, or ``token_embd.weight`` where the head is tied
    to the token embedding (SmolLM2)."""
    return "output.weight" if "output.weight" in model_file.tensors else "token_embd.weight"


def device_linears(model_file):
    """Every tensor a forward pass multiplies through its ``linear``, in the order of a pass:
    each layer's `LINEARS`, then the LM head."""
    return [layer_tensor(i, w) for i in range(model_file.params.n_layers) for w in LINEARS] + [
        head_tensor(model_file)]


class FloatLinear:
    """The float reference: y = x · Wᵀ in float32 with the dequantized GGUF weights
    (`gguf.quants`, cached by the `ModelFile`)."""

    name = "float"

    def __init__(self, model_file):
        self.model_file = model_file

    def __call__(self, x, tensor):
        return x @ self.model_file.dequantized(tensor).T


def rms_norm(x, weight, eps):
    x = x.astype(np.float32)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rope(x, positions, base):
    """Rotate adjacent pairs (x[2i], x[2i+1]) of each head: llama.cpp's order, which is how GGUF
    stores Q and K rows (not Hugging Face's half-split). x: (tokens, heads, head_dim)."""
    head_dim = x.shape[-1]
    freqs = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angles = positions[:, None].astype(np.float64) * freqs[None, :]       # (tokens, head_dim/2)
    cos = np.cos(angles)[:, None, :].astype(np.float32)
    sin = np.sin(angles)[:, None, :].astype(np.float32)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def softmax(x, axis=-1):
    x = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(x)
    return e / np.sum(e, axis=axis, keepdims=True)


def silu(x):
    return x / (1.0 + np.exp(-x))


class LlamaModel:
    """The model of a `ModelFile`: whole prompts (``logits``), or token by token with a `KVCache`
    (``forward``: a prefill of the prompt, then one token per call).

    Parameters
    ----------
    model_file : ModelFile
    linear : callable, optional
        ``linear(x, tensor_name) -> y`` for every weight matrix, the LM head included; default
        `FloatLinear`.
    """

    def __init__(self, model_file, linear=None):
        self.file = model_file
        self.p = model_file.params
        self.linear = linear or FloatLinear(model_file)
        self.head_tensor = head_tensor(model_file)

    def new_cache(self, capacity=None):
        """An empty `KVCache` for this model (``capacity`` tokens at most; default: the context
        length the file declares)."""
        p = self.p
        return KVCache(p.n_layers, p.n_kv_heads, p.head_dim,
                       capacity=capacity or context_length(self.file))

    def embed(self, token_ids):
        """The embedding rows of ``token_ids`` (only those rows are dequantized)."""
        from gguf import quants

        ids = np.asarray(token_ids)
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError(f"token_ids must be a non-empty 1-D sequence, not shape {ids.shape}")
        if not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"token_ids must be integers, not {ids.dtype}")
        if ids.min() < 0 or ids.max() >= self.p.vocab_size:
            raise ValueError(f"token_ids must be in [0, {self.p.vocab_size}), got "
                             f"{ids.min()}..{ids.max()}")
        name = "token_embd.weight"
        rows = quants.dequantize(self.file.raw(name)[ids], self.file.quant_type(name))
        return np.asarray(rows, dtype=np.float32).reshape(ids.size, self.p.d_model)

    def layer(self, x, index, linear=None, *, cache=None, start=None):
        """One decoder layer on hidden states x (tokens, d_model).

        Without ``cache`` the tokens are positions 0.. and attend to each other causally. With a
        `KVCache` they are positions ``start``.. (default ``cache.length``): their keys and
        values go into the cache's layer ``index``, and each attends to every cached position
        and to the new ones up to its own. The cache's length is not advanced here (``forward``
        does that once all layers have run).
        """
        p, f = self.p, self.file
        lin = linear or self.linear
        tokens = x.shape[0]
        if cache is None:
            start = 0
        elif start is None:
            start = cache.length
        positions = start + np.arange(tokens)

        h = rms_norm(x, f.dequantized(f"blk.{index}.attn_norm.weight"), p.norm_eps)
        q = lin(h, layer_tensor(index, "attn_q")).reshape(tokens, p.n_heads, p.head_dim)
        k = lin(h, layer_tensor(index, "attn_k")).reshape(tokens, p.n_kv_heads, p.head_dim)
        v = lin(h, layer_tensor(index, "attn_v")).reshape(tokens, p.n_kv_heads, p.head_dim)
        q = rope(q, positions, p.rope_base)
        k = rope(k, positions, p.rope_base)
        if cache is not None:
            k, v = cache.store(index, start, k, v)     # every position 0 .. start + tokens
        keys = k.shape[0]

        # Query head h reads KV head h // group: group the query heads by their KV head.
        group = p.n_heads // p.n_kv_heads
        qg = q.reshape(tokens, p.n_kv_heads, group, p.head_dim)
        scores = np.einsum("tkgd,skd->kgts", qg, k) / np.float32(np.sqrt(p.head_dim))
        causal = np.arange(keys)[None, :] > positions[:, None]          # (tokens, keys)
        scores = np.where(causal, -np.inf, scores)
        attn = np.einsum("kgts,skd->tkgd", softmax(scores), v).reshape(tokens, -1)
        x = x + lin(attn.astype(np.float32), layer_tensor(index, "attn_output"))

        h = rms_norm(x, f.dequantized(f"blk.{index}.ffn_norm.weight"), p.norm_eps)
        gate = lin(h, layer_tensor(index, "ffn_gate"))
        up = lin(h, layer_tensor(index, "ffn_up"))
        return x + lin(silu(gate) * up, layer_tensor(index, "ffn_down"))

    def forward(self, token_ids, cache, *, last_only=True):
        """Run ``token_ids`` as the next positions after what ``cache`` holds (cache.length ..),
        appending their keys and values to it.

        Every linear takes all the new tokens in one call (a prefill's rows fill the array).
        Returns float32 logits (1, vocab) of the last new position, or (tokens, vocab) of every
        new position with ``last_only=False`` (the LM head is the largest weight: it runs on the
        rows asked for only).
        """
        return self.linear(self.final_hidden(token_ids, cache, last_only=last_only),
                           self.head_tensor)

    def final_hidden(self, token_ids, cache, *, last_only=True):
        """`forward` up to the LM head: the hidden states after the final norm, float32
        (1, d_model) of the last new position, or of every new position with
        ``last_only=False``; the LM head's input (``head_tensor``)."""
        x = self.embed(token_ids)
        start = cache.length
        cache.reserve(start + x.shape[0])
        for i in range(self.p.n_layers):
            x = self.layer(x, i, cache=cache, start=start)
        cache.advance(x.shape[0])
        if last_only:
            x = x[-1:]
        return rms_norm(x, self.file.dequantized("output_norm.weight"), self.p.norm_eps)

    def logits(self, token_ids):
        """Logits of every position of ``token_ids`` (a fresh cache: no history)."""
        ids = np.asarray(token_ids)
        return self.forward(ids, self.new_cache(capacity=max(ids.size, 1)), last_only=False)

    def greedy(self, token_ids, steps):
        """Greedy continuation of ``token_ids`` by ``steps`` tokens (prefill, then one token a
        step with a `KVCache`)."""
        ids = list(token_ids)
        if steps < 1:
            return []
        cache = self.new_cache(capacity=len(ids) + steps)
        out = [int(np.argmax(self.forward(ids, cache)[-1]))]
        while len(out) < steps:
            out.append(int(np.argmax(self.forward([out[-1]], cache)[-1])))
        return out
