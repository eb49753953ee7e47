"""The GGUF's own GPT-2-style byte-level BPE, built with the `tokenizers` library."""

__all__ = ["gguf_tokenizer"]


def gguf_tokenizer(model_file):
    """A `tokenizers.Tokenizer` from ``tokenizer.ggml.tokens`` and ``tokenizer.ggml.merges``.

    No BOS is added (the file says ``add_bos_token = False``, and so does the reference).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    kind = model_file.field("tokenizer.ggml.model")
    if kind != "gpt2":
        raise ValueError(f"{model_file.path}: tokenizer model {kind!r}; only 'gpt2' (byte-level "
                         "BPE) is supported")
    tokens = model_file.field("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in model_file.field("tokenizer.ggml.merges")]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    tokenizer = Tokenizer(models.BPE(vocab, merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer
