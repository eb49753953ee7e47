"""Hostile and broken model files: a small llama GGUF written with the `gguf` library, then cut
off or patched; each one is refused by `ModelFile` with a ValueError naming the problem, in
well under a second, before the file's claims are believed."""

import struct
import time

import gguf
import numpy as np
import pytest

from systolica.host.model_file import ModelFile


def write_tiny(path, *, heads=2, kv_heads=1, d=64, ff=96, vocab=32, layers=1, k_rows=None):
    """A 1-layer llama with float32 tensors, valid unless the arguments say otherwise."""
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(layers)
    w.add_embedding_length(d)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_array("tokenizer.ggml.tokens", [f"tok{i}" for i in range(vocab)])
    kv = k_rows if k_rows is not None else kv_heads * (d // max(heads, 1))
    shapes = {"token_embd.weight": (vocab, d), "output_norm.weight": (d,)}
    for i in range(layers):
        shapes.update({f"blk.{i}.attn_norm.weight": (d,), f"blk.{i}.ffn_norm.weight": (d,),
                       f"blk.{i}.attn_q.weight": (d, d), f"blk.{i}.attn_k.weight": (kv, d),
                       f"blk.{i}.attn_v.weight": (kv, d), f"blk.{i}.attn_output.weight": (d, d),
                       f"blk.{i}.ffn_gate.weight": (ff, d), f"blk.{i}.ffn_up.weight": (ff, d),
                       f"blk.{i}.ffn_down.weight": (d, ff)})
    for name, shape in shapes.items():
        w.add_tensor(name, rng.standard_normal(shape).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


def after(data, name):
    """Offset just after the string ``name`` (a key or a tensor name) in the file."""
    return data.index(name.encode()) + len(name)


def patch(data, offset, fmt, value):
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def array_of_2_62(data):
    # key, then value type (ARRAY), item type (STRING), count
    return patch(data, after(data, "tokenizer.ggml.tokens") + 8, "<Q", 2**62)


def tensor_field(data, name, field):
    """Offset of a tensor info's shape[0] or offset field (1-D tensors: one dimension)."""
    base = after(data, name)
    n_dims = struct.unpack_from("<I", data, base)[0]
    return base + 4 if field == "shape" else base + 4 + 8 * n_dims + 4


def unknown_value_type(data):
    return patch(data, after(data, "llama.block_count"), "<I", 99)


CASES = {
    # name: (bytes from the valid file, or write_tiny arguments; the error it must name)
    "not a gguf file": (lambda d: b"PK\x03\x04" + d[4:], "no 'GGUF' magic"),
    "empty": (lambda d: b"", "empty"),
    "array length 2**62": (array_of_2_62, r"4611686018427387904 items claimed"),
    "tensor offset past the end": (
        lambda d: patch(d, tensor_field(d, "output_norm.weight", "offset"), "<Q", 2**40),
        "'output_norm.weight'.*ends past the end of the file"),
    "tensor shape past the end": (
        lambda d: patch(d, tensor_field(d, "output_norm.weight", "shape"), "<Q", 2**40),
        "'output_norm.weight'.*ends past the end of the file"),
    "unknown metadata type": (unknown_value_type, "unknown value type 99"),
    "zero heads": ({"heads": 0}, "head_count is 0; a positive integer"),
    "zero kv heads": ({"kv_heads": 0, "k_rows": 32}, "head_count_kv is 0"),
    "heads do not divide the width": ({"heads": 5}, "5 heads do not divide the model width"),
    "wrong k projection shape": ({"k_rows": 40}, r"'blk.0.attn_k.weight' has shape \(40, 64\)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_model_file_is_refused_quickly(case, tmp_path):
    make, message = CASES[case]
    good = write_tiny(tmp_path / "good.gguf")
    path = tmp_path / "bad.gguf"
    if isinstance(make, dict):
        write_tiny(path, **make)
    else:
        path.write_bytes(make(good))
    started = time.monotonic()
    with pytest.raises(ValueError, match=message):
        ModelFile(path)
    assert time.monotonic() - started < 1.0


def test_the_tiny_file_itself_is_accepted(tmp_path):
    write_tiny(tmp_path / "good.gguf")
    params = ModelFile(tmp_path / "good.gguf").params
    assert (params.n_layers, params.d_model, params.n_heads, params.head_dim) == (1, 64, 2, 32)


def test_a_file_cut_off_anywhere_is_refused(tmp_path):
    """Every cut in the header, metadata and tensor infos, and cuts through the tensor data."""
    good = write_tiny(tmp_path / "good.gguf")
    data_start = after(good, "blk.0.ffn_down.weight") + 64
    cuts = [*range(1, data_start), *range(data_start, len(good), 997), len(good) - 1]
    path = tmp_path / "cut.gguf"
    started = time.monotonic()
    for cut in cuts:
        path.write_bytes(good[:cut])
        with pytest.raises(ValueError, match=r"not a readable GGUF file: .*(file ends|left|past the end|would not fit)"):
            ModelFile(path)
    assert (time.monotonic() - started) / len(cuts) < 0.05


def test_generate_checks_the_model_before_starting_a_board(tmp_path, capsys, monkeypatch):
    from systolica import cli

    def no_simulator(*args, **kwargs):
        raise AssertionError("the simulated board was started before the model was checked")

    monkeypatch.setattr("systolica.host.link.SimulatedBoardLink", no_simulator)
    good = write_tiny(tmp_path / "good.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(array_of_2_62(good))
    assert cli.main(["generate", "Hello", "--model", str(bad)]) != 0
    _, err = capsys.readouterr()
    assert "items claimed" in err and "Traceback" not in err and err.count("\n") == 1, err
