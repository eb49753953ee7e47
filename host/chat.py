"""Chat prompts: the GGUF's own ``tokenizer.chat_template`` rendered with jinja2 the way Hugging
Face transformers renders it (``apply_chat_template``), and a tokenizer that reads the template's
control tokens (<|im_start|>, <|im_end|>, ...) as the single tokens they are."""

import contextlib
import datetime
import functools
import json

__all__ = [
    "chat_tokenizer",
    "compile_template",
    "control_tokens",
    "end_of_turn_id",
    "render_chat",
]

CONTROL = 3      # GGUF token type of control tokens


@functools.lru_cache(maxsize=8)
def compile_template(source):
    """A jinja2 template from a chat template's text, in transformers' environment: an
    `ImmutableSandboxedEnvironment` with ``trim_blocks`` and ``lstrip_blocks``, the
    ``loopcontrols`` extension, a ``tojson`` filter that does not escape HTML, and the
    ``raise_exception`` and ``strftime_now`` globals."""
    import jinja2.ext
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


def _template_source(model_file):
    try:
        return model_file.field("tokenizer.chat_template")
    except KeyError:
        raise ValueError(f"{model_file.path} has no tokenizer.chat_template: --chat needs "
                         "one") from None


def _special_token_strings(model_file):
    """bos_token and eos_token as transformers passes them to the template."""
    tokens = model_file.field("tokenizer.ggml.tokens")
    out = {}
    for name in ("bos", "eos"):
        with contextlib.suppress(KeyError):
            out[f"{name}_token"] = tokens[model_file.field(f"tokenizer.ggml.{name}_token_id")]
    return out


def render_chat(model_file, messages, *, add_generation_prompt=True):
    """The model file's chat template rendered over ``messages`` (a list of ``{"role": ...,
    "content": ...}``, or one string: a single user message)."""
    from jinja2.exceptions import TemplateError

    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    template = compile_template(_template_source(model_file))
    try:
        return template.render(messages=messages, tools=None, documents=None,
                               add_generation_prompt=add_generation_prompt,
                               **_special_token_strings(model_file))
    except TemplateError as exc:
        raise ValueError(f"the chat template failed: {exc}") from None


def control_tokens(model_file):
    """{text: id} of the vocabulary's control tokens (GGUF token type 3)."""
    tokens = model_file.field("tokenizer.ggml.tokens")
    types = model_file.field("tokenizer.ggml.token_type")
    return {tok: i for i, (tok, kind) in enumerate(zip(tokens, types, strict=True))
            if kind == CONTROL}


def end_of_turn_id(model_file):
    """The control token the template closes an assistant's turn with, or None: found by
    rendering a two-turn conversation and reading what follows the assistant's text."""
    marker = "SYSTOLICA-END-OF-TURN-PROBE"
    text = render_chat(model_file, [{"role": "user", "content": "hi"},
                                    {"role": "assistant", "content": marker}],
                       add_generation_prompt=False)
    at = text.find(marker)
    if at < 0:
        return None
    rest = text[at + len(marker):].lstrip()
    for tok, i in sorted(control_tokens(model_file).items(), key=lambda t: -len(t[0])):
        if rest.startswith(tok):
            return i
    return None


def chat_tokenizer(model_file):
    """The GGUF's tokenizer (`gguf_tokenizer`) with its control tokens registered as special
    tokens, so that the rendered template's <|im_start|> etc. encode as one token each (text
    that spells a control token, in the prompt too, is read as that token, as transformers'
    tokenizers do)."""
    from tokenizers import AddedToken

    from .tokenizer import gguf_tokenizer

    tokenizer = gguf_tokenizer(model_file)
    tokenizer.add_special_tokens([AddedToken(tok, special=True, normalized=False)
                                  for tok in control_tokens(model_file)])
    return tokenizer
