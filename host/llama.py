"""A numpy Llama decoder (RMSNorm, grouped-query attention with RoPE in the GGUF's convention,
causal softmax, SwiGLU FFN) whose every linear runs through a pluggable backend: numpy float, or
the accelerator."""

import numpy as np

__all__ = ["LINEARS", "FloatLinear", "LlamaModel"]

# The seven linear weights of a layer, in the order a layer uses them.
LINEARS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


class FloatLinear:
    """The float reference: y = x · Wᵀ in float32 with the dequantized GGUF weights."""

    name = "float"

    def __init__(self, model_file):
        self.model_file = model_file

    def __call__(self, x, layer, weight):
        w = self.model_file.dequantized(f"blk.{layer}.{weight}.weight")
        return x @ w.T


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
    """The model of a `ModelFile`, run on whole prompts (prefill, no KV cache).

    Parameters
    ----------
    model_file : ModelFile
    linear : callable
        ``linear(x, layer, weight_name) -> y``; default `FloatLinear`.
    """

    def __init__(self, model_file, linear=None):
        self.file = model_file
        self.p = model_file.params
        self.linear = linear or FloatLinear(model_file)

    def embed(self, token_ids):
        ids = np.asarray(token_ids)
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError(f"token_ids must be a non-empty 1-D sequence, not shape {ids.shape}")
        if ids.min() < 0 or ids.max() >= self.p.vocab_size:
            raise ValueError(f"token_ids must be in [0, {self.p.vocab_size}), got "
                             f"{ids.min()}..{ids.max()}")
        return self.file.dequantized("token_embd.weight")[ids]

    def layer(self, x, index, linear=None):
        """One decoder layer on hidden states x (tokens, d_model)."""
        p, f = self.p, self.file
        lin = linear or self.linear
        tokens = x.shape[0]
        positions = np.arange(tokens)

        h = rms_norm(x, f.dequantized(f"blk.{index}.attn_norm.weight"), p.norm_eps)
        q = lin(h, index, "attn_q").reshape(tokens, p.n_heads, p.head_dim)
        k = lin(h, index, "attn_k").reshape(tokens, p.n_kv_heads, p.head_dim)
        v = lin(h, index, "attn_v").reshape(tokens, p.n_kv_heads, p.head_dim)
        q = rope(q, positions, p.rope_base)
        k = rope(k, positions, p.rope_base)

        group = p.n_heads // p.n_kv_heads
        k = np.repeat(k, group, axis=1)             # query head h reads KV head h // group
        v = np.repeat(v, group, axis=1)
        scores = np.einsum("thd,shd->hts", q, k) / np.sqrt(p.head_dim)
        causal = np.triu(np.ones((tokens, tokens), dtype=bool), k=1)
        scores = np.where(causal[None], -np.inf, scores)
        attn = np.einsum("hts,shd->thd", softmax(scores), v).reshape(tokens, -1)
        x = x + lin(attn, index, "attn_output")

        h = rms_norm(x, f.dequantized(f"blk.{index}.ffn_norm.weight"), p.norm_eps)
        gate = lin(h, index, "ffn_gate")
        up = lin(h, index, "ffn_up")
        return x + lin(silu(gate) * up, index, "ffn_down")

    def logits(self, token_ids):
        """Logits of every position after all layers, the final norm and the tied LM head."""
        x = self.embed(token_ids)
        for i in range(self.p.n_layers):
            x = self.layer(x, i)
        x = rms_norm(x, self.file.dequantized("output_norm.weight"), self.p.norm_eps)
        head = ("output.weight" if "output.weight" in self.file.tensors
                else "token_embd.weight")
        return x @ self.file.dequantized(head).T

    def greedy(self, token_ids, steps):
        """Greedy continuation (recomputes the prompt each step; fine for a few tokens)."""
        ids = list(token_ids)
        for _ in range(steps):
            ids.append(int(np.argmax(self.logits(ids)[-1])))
        return ids[len(token_ids):]
