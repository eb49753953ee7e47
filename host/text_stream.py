"""Generated tokens to text as they come: byte-level BPE tokens are byte strings, and one UTF-8
character can be split across tokens, so the bytes go through an incremental UTF-8 decoder that
gives out whole characters only."""

import codecs

__all__ = ["TextStream", "byte_level_alphabet", "token_bytes"]

CONTROL = 3      # GGUF token type of control tokens (<|im_start|>, <|im_end|>, ...)


def byte_level_alphabet():
    """GPT-2's byte-level map: the printable character standing for each of the 256 bytes.

    Bytes that are printable and not whitespace (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) stand
    for themselves; the others get the code points from 256 up, in byte order.
    """
    direct = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table = {b: chr(b) for b in direct}
    extra = 256
    for b in range(256):
        if b not in table:
            table[b] = chr(extra)
            extra += 1
    return table


_CHAR_TO_BYTE = {c: b for b, c in byte_level_alphabet().items()}


def token_bytes(model_file):
    """Every token's bytes (a list indexed by token id): byte-level tokens mapped back through
    `byte_level_alphabet`, control tokens as their own text in UTF-8."""
    tokens = model_file.field("tokenizer.ggml.tokens")
    try:
        types = model_file.field("tokenizer.ggml.token_type")
    except KeyError:
        types = [1] * len(tokens)
    out = []
    for text, kind in zip(tokens, types, strict=True):
        if kind == CONTROL or any(c not in _CHAR_TO_BYTE for c in text):
            out.append(text.encode("utf-8"))
        else:
            out.append(bytes(_CHAR_TO_BYTE[c] for c in text))
    return out


class TextStream:
    """``push(token_id)`` returns the text that token completes (possibly ""); ``finish()``
    returns what is left (an incomplete character as U+FFFD).

    Parameters
    ----------
    vocab_bytes : list of bytes
        Each token id's bytes (`token_bytes`).
    """

    def __init__(self, vocab_bytes):
        self.vocab_bytes = vocab_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""

    def push(self, token_id):
        piece = self._decoder.decode(self.vocab_bytes[token_id])
        self.text += piece
        return piece

    def finish(self):
        piece = self._decoder.decode(b"", final=True)
        self.text += piece
        return piece
