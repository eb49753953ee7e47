"""The host's key/value cache: float32 keys and values of every position so far, per layer."""

import numpy as np

__all__ = ["KVCache"]


class KVCache:
    """Keys and values (after RoPE) of the positions a model has run, for each layer.

    Storage grows (doubling) as positions are added, up to ``capacity`` positions.

    Parameters
    ----------
    n_layers, n_kv_heads, head_dim : int
        The model's shape.
    capacity : int
        Most positions the cache takes (the model's context length).
    """

    def __init__(self, n_layers, n_kv_heads, head_dim, *, capacity):
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be a positive integer, not {capacity!r}")
        self.n_layers, self.n_kv_heads, self.head_dim = n_layers, n_kv_heads, head_dim
        self.capacity = capacity
        self.length = 0            # positions every layer holds
        self._k = [np.zeros((0, n_kv_heads, head_dim), np.float32) for _ in range(n_layers)]
        self._v = [np.zeros((0, n_kv_heads, head_dim), np.float32) for _ in range(n_layers)]

    @property
    def allocated(self):
        """Positions the storage has room for now."""
        return self._k[0].shape[0]

    def reserve(self, positions):
        """Make room for ``positions`` positions in all (ValueError beyond the capacity)."""
        if positions > self.capacity:
            raise ValueError(f"{positions} positions exceed the cache's capacity of "
                             f"{self.capacity} (the model's context length)")
        if positions <= self.allocated:
            return
        size = min(max(positions, 2 * self.allocated, 64), self.capacity)
        for store in (self._k, self._v):
            for i, old in enumerate(store):
                new = np.zeros((size, self.n_kv_heads, self.head_dim), np.float32)
                new[:old.shape[0]] = old
                store[i] = new

    def store(self, layer, start, k, v):
        """Write layer ``layer``'s keys and values of positions ``start`` .. ``start + len(k)``
        and return views of its keys and values of positions 0 .. ``start + len(k)``."""
        if start != self.length:
            raise ValueError(f"new positions must follow the cached ones: start {start}, "
                             f"cache length {self.length}")
        end = start + k.shape[0]
        self.reserve(end)
        self._k[layer][start:end] = k
        self._v[layer][start:end] = v
        return self._k[layer][:end], self._v[layer][:end]

    def advance(self, tokens):
        """Count ``tokens`` new positions as cached (once every layer has stored them)."""
        self.reserve(self.length + tokens)
        self.length += tokens

    def keys(self, layer):
        return self._k[layer][:self.length]

    def values(self, layer):
        return self._v[layer][:self.length]
