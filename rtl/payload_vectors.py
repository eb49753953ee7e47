"""The payload router's vector states (`PayloadRouter`): one vector of link words after another
into the activation buffer, the weight banks (int8) or the unpacker (a block GEMM's groups),
and the step from a vector to the next, the next tile or the CRC word."""

from amaranth.hdl import Mux

from .payload_router_state import set_left

__all__ = ["VectorStates"]


class VectorStates:
    """`PayloadRouter`'s states that move vectors; each takes the router's registers ``r``
    (`payload_router_state.router_registers`)."""

    def _next_step(self, m, r, size, tile_state):
        """After a tile's vector (or group): the next one, the next tile, or the end."""
        with m.If(r.step_last):
            with m.If(r.tile_last):
                self._crc_word_next(m, r)
            with m.Else():
                set_left(m, self._config, r, r.left, minus=size)
                m.next = tile_state
        with m.Else():
            m.d.sync += [r.steps_left.eq(r.steps_left - 1), r.step_last.eq(r.steps_left == 1)]

    def _next_vector(self, m, r, size, tile_state, load):
        m.d.sync += [r.word_idx.eq(0), r.word_last.eq(r.one_word)]
        self._next_step(m, r, size, tile_state)
        with m.If(~r.step_last):
            m.d.sync += r.step.eq(r.step + 1)
            if self._config.block_formats and load:
                with m.If(r.cmd.blocks & (r.step[:5] == 31)):   # a new block: its scales first
                    m.d.sync += [r.scale_phase.eq(1), r.word_last.eq(r.scale_one_word)]

    def _vector_state(self, m, r, out, size, tile_state):
        """Words gathered into vectors of ``out`` (with LOAD_A in blocks, scale vectors too)."""
        load = out is self.act
        scales = bool(self._config.block_formats) and load
        if scales:
            m.d.comb += [
                out.valid.eq(self.rx.valid & r.word_last & ~r.scale_phase),
                self.act_scale.valid.eq(self.rx.valid & r.word_last & r.scale_phase),
                self.rx.ready.eq(~r.word_last | Mux(r.scale_phase, self.act_scale.ready,
                                                    out.ready)),
            ]
            last_word = Mux(r.scale_phase, r.scale_last_word, r.vec_last_word)
        else:
            m.d.comb += [
                out.valid.eq(self.rx.valid & r.word_last),
                self.rx.ready.eq(~r.word_last | out.ready),
            ]
            last_word = r.vec_last_word
        with m.If(self.rx.valid & self.rx.ready):
            m.d.sync += r.vec.eq(r.vec_next)
            with m.If(r.word_last):
                if scales:
                    with m.If(r.scale_phase):
                        m.d.sync += [r.scale_phase.eq(0), r.word_idx.eq(0),
                                     r.word_last.eq(r.one_word), r.scale_check.eq(1)]
                    with m.Else():
                        self._next_vector(m, r, size, tile_state, load)
                else:
                    self._next_vector(m, r, size, tile_state, load)
            with m.Else():
                m.d.sync += [r.word_idx.eq(r.word_idx + 1),
                             r.word_last.eq(r.word_idx + 1 == last_word)]

    def _packed_vector_state(self, m, r):
        """LOAD_A on a device that packs activation vectors (`protocol.act_lanes`): each word
        gives ``lanes`` vectors of ``rows`` bytes, one a cycle, and is taken with its last one
        or the tile's last vector (the rest of the tile's last word is padding). In 32-blocks
        a scale vector is a word of its own; a block's 32 vectors are whole words."""
        cfg = self._config
        take_word = r.lane_last | r.step_last
        if cfg.block_formats:
            m.d.comb += [
                self.act.valid.eq(self.rx.valid & ~r.scale_phase),
                self.act_scale.valid.eq(self.rx.valid & r.scale_phase),
                self.rx.ready.eq(Mux(r.scale_phase, self.act_scale.ready,
                                     self.act.ready & take_word)),
            ]
            with m.If(self.act_scale.valid & self.act_scale.ready):
                m.d.sync += [r.vec.eq(r.vec_next), r.scale_phase.eq(0), r.scale_check.eq(1)]
        else:
            m.d.comb += [
                self.act.valid.eq(self.rx.valid),
                self.rx.ready.eq(self.act.ready & take_word),
            ]
        with m.If(self.act.valid & self.act.ready):
            m.d.sync += [r.lane.eq(Mux(take_word, 0, r.lane + 1)),
                         r.lane_last.eq(~take_word & (r.lane == r.lanes - 2))]
            self._next_vector(m, r, cfg.rows, "LOAD_A_TILE", True)

    def _group_state(self, m, r):
        """GEMM in a block format: words go to the unpacker, K / 32 groups a tile."""
        m.d.comb += [
            self.wgt_words.valid.eq(self.rx.valid),
            self.rx.ready.eq(self.wgt_words.ready),
        ]
        with m.If(self.rx.valid & self.rx.ready):
            with m.If(r.word_last):
                m.d.sync += [r.group_idx.eq(0), r.word_last.eq(r.group_one_word)]
                self._next_step(m, r, self._config.cols, "GEMM_TILE")
            with m.Else():
                m.d.sync += [r.group_idx.eq(r.group_idx + 1),
                             r.word_last.eq(r.group_idx + 1 == r.group_last_word)]
