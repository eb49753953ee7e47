"""A model file's weights re-quantized to another GGUF block format with `gguf.quants`, for
comparing formats (`quality`): the file holds no higher-precision weights, so the other
formats are made from its dequantized ones."""

import numpy as np

__all__ = ["Requantized"]


class Requantized:
    """The model file's linear weights re-quantized to ``fmt`` (a GGML type name) with
    `gguf.quants`; other tensors are the file's. Looks like a `ModelFile` to the linears."""

    def __init__(self, model_file, fmt):
        from gguf import GGMLQuantizationType

        self.file = model_file
        self.fmt = fmt
        self.qtype = GGMLQuantizationType[fmt.upper()]
        self._raw = {}
        self._dequantized = {}

    def raw(self, name):
        from gguf import quants

        if name not in self._raw:
            self._raw[name] = np.asarray(quants.quantize(self.file.dequantized(name), self.qtype))
        return self._raw[name]

    def quant_type(self, name):
        return self.qtype

    def dequantized(self, name):
        from gguf import quants

        if name not in self._dequantized:
            data = quants.dequantize(self.raw(name), self.qtype)
            self._dequantized[name] = np.asarray(data, np.float32).reshape(
                self.file.tensor_shape(name))
        return self._dequantized[name]

    def tensor_shape(self, name):
        return self.file.tensor_shape(name)

    @property
    def params(self):
        return self.file.params
