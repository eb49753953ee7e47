"""The header parser's decisions (`HeaderParser`): the reply a checked header gets or its way on,
and the command handed to the payload router."""

from amaranth.hdl import Mux

from systolica.protocol import Feature, Status

__all__ = ["command_out", "decide"]


def command_out(parser, m, config, check_dram, v, hdr, a_blocks):
    """The command ``parser`` hands the router, from the header and its verdict ``v``
    (``check_dram``: its `DramVerdict`, on a device with DRAM)."""
    cmd = parser.router.cmd
    size = Mux(v.is_load, hdr.arg0[:16], hdr.arg2[:16])
    if config.dram_mib:       # WRITE_DRAM, DRAM_CHECK: their words, less one
        d, lb = check_dram, config.link_bytes
        log_lb = lb.bit_length() - 1
        words = Mux(d.is_write, hdr.length >> log_lb, hdr.arg1 >> log_lb)
        m.d.comb += [cmd.payload.store.eq(d.is_write | d.is_check),
                     cmd.payload.words.eq(words - 1)]
    m.d.comb += [
        cmd.payload.load.eq(v.is_load),
        cmd.payload.size.eq(size),
        cmd.payload.k_last.eq(hdr.arg1 - 1),
    ]
    if config.block_formats:
        m.d.comb += [
            parser.act_blocks.eq(a_blocks),
            cmd.payload.blocks.eq(Mux(v.is_load, v.load_blocks, a_blocks)),
            cmd.payload.fmt.eq(Mux(v.is_load, 0, hdr.arg2[24:26])),
        ]


def decide(parser, m, config, v, hdr, size, send_reply, hand_on, dram):
    """``parser``'s DECIDE state: the reply a bad or unsupported header gets, IDENTIFY's, or
    the command's way on (LOAD_A to its size check, GEMM to the router), from the `Verdict`
    ``v``."""
    cfg = config
    blocks = bool(cfg.block_formats)
    with m.If(v.bad_header):
        send_reply(m, Status.BAD_CHECK)
    with m.Elif(v.is_identify):
        send_reply(m, Status.OK, identify=True)
    with m.Elif(v.is_load):
        with m.If(~v.a_fmt_ok):
            send_reply(m, Status.BAD_FORMAT)
        with m.Elif(~v.n_ok | ~v.k_ok | (v.load_blocks & ~v.a_k32)):
            send_reply(m, Status.BAD_LENGTH)
        with m.Else():
            m.d.comb += size.start.eq(1)
            m.next = "SIZE_LOAD_A"
    with m.Elif(v.is_gemm):
        with m.If(~v.n_ok | ~v.k_ok | ~v.m_ok):
            send_reply(m, Status.BAD_LENGTH)
        with m.Elif(~v.matches_loaded):
            send_reply(m, Status.NOT_LOADED)
        with m.Elif(~v.w_fmt_ok):
            send_reply(m, Status.BAD_FORMAT)
        if dram:
            dram.decide_gemm(m, send_reply)
        with m.Else():
            m.d.sync += parser.m.eq(hdr.arg2[:16])
            if blocks:
                m.d.sync += parser.fmt.eq(hdr.arg2[24:26])
            # The flags pass the check on a GEMM_DRAM only.
            if Feature.PAIR_SUM in cfg.features:
                m.d.sync += parser.pair.eq(hdr.arg2[23])
            if Feature.ARGMAX in cfg.features:
                m.d.sync += parser.argmax.eq(hdr.arg2[22])
            hand_on(m)
            if dram:
                dram.gemm_accepted(m)
    if dram:
        dram.decide_commands(m, send_reply)
    with m.Else():
        send_reply(m, Status.BAD_OPCODE)
