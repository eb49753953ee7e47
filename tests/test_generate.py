"""Text generation with the whole model: the KV cache against recomputation, the float model's
known answer, the chat template, UTF-8 streaming, the per-step figures, the CLI's bad input, and
(slow: minutes) two tokens on the simulated board checked against the float model."""

import re
import subprocess
import sys
import time

import numpy as np
import pytest

from systolica import cli
from systolica.config import Config
from systolica.host import block_formats
from systolica.host.accel_linear import BlockLinear, split_tensor_name
from systolica.host.chat import chat_tokenizer, end_of_turn_id, render_chat
from systolica.host.driver import DriverStats
from systolica.host.generate import generate, open_accelerator, prepare_prompt
from systolica.host.generation_summary import summary_lines
from systolica.host.kv_cache import KVCache
from systolica.host.link import Link, LinkTimeout, SimulatedBoardLink
from systolica.host.llama import LlamaModel
from systolica.host.sampling import Sampler
from systolica.host.text_stream import TextStream, token_bytes
from systolica.host.timed_link import TimedLink
from systolica.host.tokenizer import gguf_tokenizer

PROMPT = "The capital of France is"
PARIS = [7042, 30, 198, 198, 504]            # " Paris.\n\nThe": the float model's greedy tokens


@pytest.fixture(scope="module")
def model(model_file):
    return LlamaModel(model_file)


@pytest.fixture(scope="module")
def prompt_ids(model_file):
    return gguf_tokenizer(model_file).encode(PROMPT).ids


# --- the model with a KV cache ----------------------------------------------------------------

def test_kv_cache_decode_equals_recomputation(model, prompt_ids):
    """Prefill, then 4 one-token steps with the cache: each step's logits equal those of the whole
    sequence recomputed without history (within float32 rounding), with the same arg max."""
    cache = model.new_cache()
    logits = model.forward(prompt_ids, cache)[-1]
    ids = list(prompt_ids)
    for step in range(4):
        full = model.logits(ids)[-1]
        np.testing.assert_allclose(logits, full, rtol=1e-4, atol=1e-4, err_msg=f"step {step}")
        assert np.argmax(logits) == np.argmax(full)
        ids.append(int(np.argmax(logits)))
        assert cache.length == len(ids) - 1
        logits = model.forward([ids[-1]], cache)[-1]
    assert ids[len(prompt_ids):] == PARIS[:4]


def test_chunked_prefill_equals_one_prefill(model, prompt_ids):
    """Several new positions after cached ones (causal mask offset by the cache length)."""
    whole = model.forward(prompt_ids, model.new_cache(), last_only=False)
    cache = model.new_cache()
    first = model.forward(prompt_ids[:2], cache, last_only=False)
    rest = model.forward(prompt_ids[2:], cache, last_only=False)
    assert whole.shape == (len(prompt_ids), model.p.vocab_size)
    np.testing.assert_allclose(np.concatenate([first, rest]), whole, rtol=1e-4, atol=1e-4)


def test_kv_cache_grows_and_stops_at_its_capacity():
    cache = KVCache(2, 3, 4, capacity=100)
    k = np.ones((70, 3, 4), np.float32)
    keys, values = cache.store(0, 0, k, 2 * k)
    assert cache.allocated >= 70 and keys.shape == values.shape == (70, 3, 4)
    cache.store(1, 0, k, k)
    cache.advance(70)
    assert cache.length == 70
    np.testing.assert_array_equal(cache.values(0), 2 * k)
    with pytest.raises(ValueError, match="new positions must follow"):
        cache.store(0, 3, k[:1], k[:1])
    with pytest.raises(ValueError, match="exceed the cache's capacity of 100"):
        cache.store(0, 70, k[:31], k[:31])


# --- generation on the float path ------------------------------------------------------------

def test_float_generation_known_answer(model_file):
    pieces = []
    prompt = prepare_prompt(model_file, PROMPT)
    assert prompt.stop_ids == (2,)          # tokenizer.ggml.eos_token_id
    result = generate(model_file, prompt, tokens=5, write=pieces.append)
    assert result.ids == PARIS
    assert result.text == " Paris.\n\nThe" == "".join(pieces)
    assert result.stop_reason == "token limit"
    assert [s.kind for s in result.steps] == ["prefill"] + ["decode"] * 4
    assert [s.tokens for s in result.steps] == [5, 1, 1, 1, 1]
    assert result.divergence is None and result.all_exact is None and not result.checked
    for s in result.steps:
        parts = s.link_seconds + s.linear_host_seconds + s.model_host_seconds
        assert parts == pytest.approx(s.wall, rel=1e-6, abs=1e-6)
        assert s.device_cycles == 0
    assert result.ids[:4] == LlamaModel(model_file).greedy(prompt.ids, 4)


def test_generation_stops_at_end_of_sequence(model_file):
    """The chat answer to a short question ends with <|im_end|>, which is the file's EOS."""
    prompt = prepare_prompt(model_file, "What is the capital of France?", chat=True)
    result = generate(model_file, prompt, tokens=30)
    assert result.stop_reason == "end of sequence"
    assert result.ids[-1] == 2
    assert result.text == "The capital of France is Paris."


def test_seeded_sampling_is_reproducible(model_file):
    prompt = prepare_prompt(model_file, PROMPT)

    def run(seed):
        return generate(model_file, prompt, tokens=4,
                        sampler=Sampler(temperature=1.5, top_p=0.98, seed=seed)).ids

    first = run(11)
    assert run(11) == first
    assert {tuple(run(12)), tuple(run(13))} != {tuple(first)}


def test_bad_token_count_is_rejected(model_file):
    with pytest.raises(ValueError, match="tokens must be a positive integer"):
        generate(model_file, prepare_prompt(model_file, PROMPT), tokens=0)


# --- the chat template -----------------------------------------------------------------------

CHAT_HI = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
           "Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_chat_template_known_answer(model_file):
    """The file's own tokenizer.chat_template, rendered as transformers does."""
    assert render_chat(model_file, "Hi") == CHAT_HI
    assert render_chat(model_file, [{"role": "system", "content": "Be brief."},
                                    {"role": "user", "content": "Hi"}]) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n")
    assert end_of_turn_id(model_file) == 2          # <|im_end|>


def test_chat_prompt_tokens(model_file):
    """Control tokens are single tokens in the chat prompt; plain text is unchanged."""
    prompt = prepare_prompt(model_file, "Hi", chat=True)
    assert prompt.text == CHAT_HI
    assert prompt.ids[:3] == [1, 9690, 198]                # <|im_start|> system \n
    assert prompt.ids[-6:] == [2, 198, 1, 520, 9531, 198]  # <|im_end|> \n <|im_start|>assistant\n
    assert prompt.ids.count(1) == 3 and prompt.ids.count(2) == 2
    assert chat_tokenizer(model_file).encode(PROMPT).ids == [504, 3575, 282, 4649, 314]


# --- streaming text --------------------------------------------------------------------------

def test_stream_waits_for_whole_utf8_characters(model_file):
    """'日' is three bytes that the tokenizer splits over three tokens."""
    tokenizer = gguf_tokenizer(model_file)
    ids = tokenizer.encode(" 日本 é").ids
    assert ids == [17097, 241, 115, 40993, 26411]
    stream = TextStream(token_bytes(model_file))
    assert [stream.push(i) for i in ids] == [" ", "", "日", "本", " é"]
    assert stream.finish() == ""
    assert stream.text == tokenizer.decode(ids) == " 日本 é"


@pytest.mark.parametrize(("pieces", "pushed", "tail"), [
    ([b"a\xe2", b"\x82", b"\xac!"], ["a", "", "€!"], ""),
    ([b"\xf0\x9f", b"\x98\x80"], ["", "😀"], ""),
    ([b"ok \xe2\x82"], ["ok "], "\ufffd"),              # cut off: shown as U+FFFD at the end
])
def test_stream_on_split_bytes(pieces, pushed, tail):
    stream = TextStream(pieces)
    assert [stream.push(i) for i in range(len(pieces))] == pushed
    assert stream.finish() == tail


def test_token_bytes_agree_with_the_tokenizer(model_file):
    tokenizer = gguf_tokenizer(model_file)
    vocab = token_bytes(model_file)
    ids = np.random.default_rng(3).integers(17, len(vocab), 2000)
    for i in ids:
        assert vocab[i].decode("utf-8", errors="replace") == tokenizer.decode([int(i)]), i
    assert vocab[2] == b"<|im_end|>"


# --- the accelerator path without a device ---------------------------------------------------

class ReferenceDriver:
    """Stands in for a Driver: answers gemm_blocks with the bit-exact block model."""

    def __init__(self):
        self.stats = DriverStats()

    def gemm_blocks(self, xq, xd, raw, fmt):
        self.stats.device_gemms += 1
        return block_formats.block_gemm_reference(xq, xd, raw, fmt).view(np.float32)


@pytest.mark.parametrize(("tensor", "layer", "weight", "fmt"), [
    ("blk.3.attn_q.weight", 3, "attn_q", "q4_1"),
    ("blk.29.ffn_down.weight", 29, "ffn_down", "q4_1"),
    ("token_embd.weight", None, "token_embd", "q8_0"),         # the tied LM head
])
def test_block_linear_takes_tensor_names(model_file, tensor, layer, weight, fmt):
    assert split_tensor_name(tensor) == (layer, weight)
    k = model_file.tensor_shape(tensor)[1]
    x = np.random.default_rng(0).standard_normal((3, k)).astype(np.float32)
    checked = BlockLinear(ReferenceDriver(), model_file)
    unchecked = BlockLinear(ReferenceDriver(), model_file, float_check=False)
    assert checked.format_of(tensor).name == fmt
    np.testing.assert_array_equal(checked(x, tensor), unchecked(x, tensor))
    (a,), (b,) = checked.records, unchecked.records
    # Two int8 terms per activation: the device computes 2 rows per token.
    assert (a.layer, a.weight, a.n, a.k, a.m) == (layer, weight, 3 * checked.terms, k,
                                                  model_file.tensor_shape(tensor)[0])
    assert a.exact and b.exact
    assert a.cosine > 0.999 and np.isnan(b.cosine)
    assert a.float_seconds > 0 and a.exact_seconds > 0 and a.quantize_seconds > 0


@pytest.mark.parametrize(("terms", "bound"), [(1, 0.997), (2, 0.9999)])
def test_whole_model_on_the_block_path(model_file, terms, bound):
    """Every linear and the LM head through BlockLinear (over the bit-exact block model instead
    of a device): the first tokens are still " Paris.", checked against the float model.

    With one int8 term per activation the logits' cosine is 0.99818 at the prefill's last
    position on this prompt (the rounding noise of 30 layers: each linear alone stays above
    0.9996); two terms bring every step above 0.99999."""
    driver = ReferenceDriver()
    linear = BlockLinear(driver, model_file, float_check=False, terms=terms)
    result = generate(model_file, prepare_prompt(model_file, PROMPT), linear=linear, tokens=2,
                      check=True)
    assert result.ids == PARIS[:2]
    assert len(linear.records) == 2 * (30 * 7 + 1)
    assert linear.records[-1].weight == "token_embd" and linear.records[-1].n == terms
    assert linear.records[0].n == 5 * terms        # the prefill: all prompt rows in one call
    assert all(c >= bound for c in result.cosines), result.cosines
    assert result.divergence is None and result.all_exact
    assert all(s.exact_seconds > 0 and s.check_seconds > 0 for s in result.steps)
    assert any("cosine" in line for line in summary_lines(result))


# --- the timing link ---------------------------------------------------------------------------

class SlowLink(Link):
    name = "slow test link"
    extra = "forwarded"

    def __init__(self):
        self.written = b""

    def write(self, data):
        time.sleep(0.01)
        self.written += bytes(data)

    def read_some(self, timeout, want=1):
        time.sleep(0.02)
        raise LinkTimeout("nothing")

    def poll(self):
        return b"x"

    def close(self):
        self.closed = True


def test_timed_link_forwards_and_counts_seconds():
    inner = SlowLink()
    link = TimedLink(inner)
    link.write(b"ab")
    with pytest.raises(LinkTimeout):
        link.read_some(1.0)
    assert link.poll() == b"x"
    link.close()
    assert inner.written == b"ab" and inner.closed
    assert link.name == "slow test link" and link.extra == "forwarded"
    assert link.calls == {"write": 1, "read_some": 1, "poll": 1}
    assert link.seconds["write"] >= 0.01 and link.seconds["read_some"] >= 0.02
    assert link.total_seconds == pytest.approx(sum(link.seconds.values()))


# --- the command line ------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "code", "message"), [
    (["generate", ""], 2, "the prompt is empty"),
    (["generate", "   "], 2, "the prompt is empty"),
    (["generate", PROMPT, "--tokens", "0"], 2, "--tokens must be at least 1, not 0"),
    (["generate", PROMPT, "--tokens", "-1"], 2, "--tokens must be at least 1, not -1"),
    (["generate", "a" + " a" * 8200], 2, "longer than the model's context of 8192 tokens"),
    (["generate", PROMPT, "--port", "/dev/no-such-tty"], 2,
     "serial port /dev/no-such-tty does not exist"),
    (["generate", PROMPT, "--port", "/dev/null"], 1, "cannot open serial port /dev/null"),
    (["generate", PROMPT, "--top-p", "0"], 2, "--top-p must be a number in (0, 1]"),
    (["generate", PROMPT, "--top-p", "1.5"], 2, "--top-p must be a number in (0, 1]"),
    (["generate", PROMPT, "--top-k", "-2"], 2, "--top-k must be an integer >= 0"),
    (["generate", PROMPT, "--temperature", "-1"], 2, "--temperature must be a finite number"),
    (["generate", PROMPT, "--seed", "-1"], 2, "--seed must be an integer >= 0"),
    (["generate", PROMPT, "--model", "/no/such.gguf"], 2, "model file /no/such.gguf does not"),
    (["generate", PROMPT, "--port", "/dev/null", "--backend", "float"], 2,
     "does not go with --backend float"),
], ids=["empty", "blank", "tokens-0", "tokens-negative", "too-long", "no-such-port",
        "not-a-serial-port", "top-p-0", "top-p-above-1", "top-k-negative",
        "temperature-negative", "seed-negative", "no-model-file", "port-with-float"])
def test_cli_bad_input(args, code, message, capsys, monkeypatch):
    """A one-line error naming the problem, a non-zero exit code, no traceback, and no simulated
    board started."""
    def no_simulator(*args, **kwargs):
        raise AssertionError("the simulated board was started before the input was checked")

    monkeypatch.setattr("systolica.host.link.SimulatedBoardLink", no_simulator)
    assert cli.main(args) == code
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("systolica generate: error: "), err
    assert message in err
    assert "Traceback" not in err


def test_cli_bad_input_in_a_process():
    proc = subprocess.run([sys.executable, "-m", "systolica.cli", "generate", "--tokens", "0",
                           PROMPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == "systolica generate: error: --tokens must be at least 1, not 0\n"


def test_cli_float_backend(capsys):
    assert cli.main(["generate", PROMPT, "--backend", "float", "--tokens", "3"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(" Paris.\n\n\n")
    assert "3 tokens generated after a prompt of 5 (stopped: token limit)" in out
    startup, total = map(float, re.search(r"start-up ([\d.]+) s \(imports, the model file\); "
                                          r"the command ([\d.]+) s in all", out).groups())
    assert 0 < startup < total
    assert err == ""


# --- on the simulated board (minutes) --------------------------------------------------------

def test_generate_on_simulated_board(model_file):
    """Two tokens with every linear and the Q8_0 LM head on the simulated board: every device
    GEMM bit-exact, the same tokens as the float model, each step's logits within 0.9999 cosine
    of the float model's (two int8 terms per activation, the default), each step's device, link
    and time figures collected."""
    accel = open_accelerator(SimulatedBoardLink(Config()), model_file, timeout=120)
    try:
        result = generate(model_file, prepare_prompt(model_file, PROMPT), linear=accel.linear,
                          driver=accel.driver, link=accel.link, tokens=2, check=True)
    finally:
        accel.close()
    assert result.ids == PARIS[:2]
    assert [s.float_argmax for s in result.steps] == PARIS[:2]
    assert len(result.cosines) == 2 and min(result.cosines) >= 0.9999, result.cosines
    assert result.divergence is None
    assert result.all_exact
    prefill, decode = result.steps
    assert prefill.device_gemms == decode.device_gemms == 30 * 7 + 1
    for s in result.steps:
        assert s.device_cycles > 0 and s.weight_bytes > 0 and s.act_bytes > 0
        assert s.result_bytes > 0 and s.link_seconds > 0 and s.check_seconds > 0
        assert s.float_ref_seconds < 0.01      # BlockLinear's per-call float check is off
    # The weights cross once per step: Q4_1 layers and the Q8_0 head, whatever the prompt.
    assert 0.98 < decode.weight_bytes / prefill.weight_bytes < 1.02
    # Five prompt rows take no fewer cycles than one decode row (allowing for the simulated
    # board's run-to-run variation, see the README).
    assert prefill.device_cycles > 0.8 * decode.device_cycles
    print("\n".join(summary_lines(result)))


def test_generate_refuses_a_device_without_the_models_formats(model_file):
    """An int8-only device (the iCEBreaker's configuration, simulated) is refused at open with
    the formats it lacks, before any GEMM is sent."""
    from systolica.boards.catalog import BOARDS

    link = SimulatedBoardLink(BOARDS["icebreaker"].config)
    with pytest.raises(ValueError, match=r"q4_1, q8_0 missing.*ulx3s-25f"):
        open_accelerator(link, model_file, timeout=60)
