"""One processing element of the output-stationary systolic array."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PE", "StepControl"]


class StepControl(data.Struct):
    """Control that travels with an activation through a row of the array.

    ``valid`` marks a real step (bubbles carry 0), ``last`` the step k = K-1 of a tile (the sum
    is captured into ``result`` and the accumulator restarts from zero).
    """

    valid: 1
    last: 1


class PE(wiring.Component):
    """An int8 × int8 → int32 multiply-accumulate cell.

    Activations and control enter from the left and leave to the right one cycle later; weights
    enter from the top and leave at the bottom one cycle later. The product is registered before
    it is accumulated (a pipeline register after the multiplier). On a ``last`` step the finished
    sum is copied to ``result``, ``done`` pulses and the accumulator is cleared (a synchronous
    reset of its flip-flops, no logic in front of the adder), so the next tile may start on the
    next cycle while ``result`` is read out. A tile therefore always ends with a ``last`` step.

    Parameters
    ----------
    a_width, w_width, acc_width : int
        Operand and accumulator widths (signed).
    multiplier : "infer", "lut" or "external"
        "infer": a plain ``*`` that the synthesizer maps (to a hard DSP where there is one);
        "lut": shift-and-add partial products, which synthesizers leave in logic; "external":
        the registered product arrives on ``product_in`` ``product_latency`` cycles after
        ``a_in``/``w_in`` (from a `PairMultiplier` shared with a neighbour, latency 1, or a
        `RegisteredMultiplier`, latency 2).
    product_latency : int
        See "external".
    """

    def __init__(self, *, a_width=8, w_width=8, acc_width=32, multiplier="infer",
                 product_latency=1):
        if multiplier not in ("infer", "lut", "external"):
            raise ValueError(f"multiplier must be 'infer', 'lut' or 'external', not "
                             f"{multiplier!r}")
        self._acc_width = acc_width
        self._multiplier = multiplier
        self._product_latency = product_latency if multiplier == "external" else 1
        ports = {"product_in": In(data.signed(a_width + w_width))} if multiplier == "external" \
            else {}
        super().__init__({
            **ports,
            "a_in": In(data.signed(a_width)),
            "w_in": In(data.signed(w_width)),
            "ctrl_in": In(StepControl),
            "a_out": Out(data.signed(a_width)),
            "w_out": Out(data.signed(w_width)),
            "ctrl_out": Out(StepControl),
            "result": Out(data.signed(acc_width)),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        # Operands, the product and the result are data whose meaning is given by the (reset)
        # control, so their registers are out of the domain reset: no reset net reaches them.
        a_out = Signal.like(self.a_in, reset_less=True)
        w_out = Signal.like(self.w_in, reset_less=True)
        m.d.sync += [a_out.eq(self.a_in), w_out.eq(self.w_in), self.ctrl_out.eq(self.ctrl_in)]
        m.d.comb += [self.a_out.eq(a_out), self.w_out.eq(w_out)]

        product = Signal(data.signed(self.a_in.shape().width + self.w_in.shape().width),
                         reset_less=True)
        ctrl = self.ctrl_in
        for i in range(self._product_latency):     # aligned with the product
            stage = Signal(StepControl, name=f"ctrl_{i + 1}")
            m.d.sync += stage.eq(ctrl)
            ctrl = stage
        if self._multiplier == "external":
            m.d.comb += product.eq(self.product_in)
        elif self._multiplier == "infer":
            m.d.sync += product.eq(self.a_in * self.w_in)
        else:
            a, w = self.a_in, self.w_in
            top = len(w) - 1
            # Two's complement w: bit i weighs 2**i, the top bit -2**top.
            m.d.sync += product.eq(sum(Mux(w[i], a << i, 0) for i in range(top))
                                   - Mux(w[top], a << top, 0))

        # The accumulator is left out of the domain reset: its clear is then the only thing on
        # its flip-flops' reset input (not the clear or'ed with a design-wide reset net, which
        # was the ULX3S-85F's critical path at 97 MHz). It starts at 0 from configuration and
        # after every tile; the control that clears it is reset.
        acc = Signal(data.signed(self._acc_width), reset_less=True)
        total = Signal(data.signed(self._acc_width))
        m.d.comb += total.eq(acc + product)
        # The clear is written as a reset over the enable: the form ECP5 flip-flops take as is.
        finish = Signal()
        m.d.comb += finish.eq(ctrl.valid & ctrl.last)
        m.d.sync += self.done.eq(finish)
        result = Signal.like(self.result, reset_less=True)     # read only after ``done``
        m.d.comb += self.result.eq(result)
        with m.If(finish):
            m.d.sync += [acc.eq(0), result.eq(total)]
        with m.Elif(ctrl.valid):
            m.d.sync += acc.eq(total)
        return m
