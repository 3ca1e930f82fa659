"""Pipelined multiply-accumulate processing elements of the systolic array.

Both PEs register their operands before the multiplier and the product after it
(the shape of a DSP block with input and output registers), register the product
once more in the fabric (a DSP block's output reaches the logic over long routing,
so the adder does not take it in the same cycle), then add. The
operand registers double as the systolic pass-through to the neighbour PEs, so a
value moves one PE per cycle.

Timing, with ``t`` the cycle an operand is on ``a_in``/``b_in``:

* ``t+1``: operand registers (``a_out``/``b_out`` show them to the neighbours);
* ``t+2``: product register;
* ``t+3``: the product's fabric register;
* ``t+4``: the accumulator (OS) or ``psum_out`` (WS) includes the product.
"""

from amaranth import Elaboratable, Module, Signal, Mux, signed, unsigned, Shape
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out

__all__ = ["OSControl", "WSControl", "OSProcessingElement", "WSProcessingElement",
           "product_shape", "os_operand_shapes", "registered_multiplier"]


OSControl = data.StructLayout({"valid": 1, "first": 1, "last": 1})
WSControl = data.StructLayout({"valid": 1, "swap": 1})


def product_shape(a_shape: Shape, b_shape: Shape) -> Shape:
    a_shape, b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
    return signed(a_shape.width + b_shape.width + (a_shape.signed != b_shape.signed)) \
        if (a_shape.signed or b_shape.signed) else unsigned(a_shape.width + b_shape.width)


def os_operand_shapes(a_shape, b_shape, group: int):
    """Shapes on the OS array's ``a`` and ``b`` paths: plain elements when dense; with
    N:M sparsity (``group`` = M) a group of M ``a`` values and a ``b`` value with its
    position in the group."""
    if group == 1:
        return a_shape, b_shape
    idx_bits = (group - 1).bit_length()
    return (data.ArrayLayout(a_shape, group),
            data.StructLayout({"val": b_shape, "idx": unsigned(idx_bits)}))


def registered_multiplier(platform, a_shape, b_shape, p_shape):
    """The platform's registered multiplier for these shapes, or ``None``.

    Hook contract: a platform may offer ``accelgen_multiplier(a_shape, b_shape,
    p_shape)`` returning a component with inputs ``a``, ``b``, ``a_en``, ``b_en`` and
    output ``p``, where ``a`` and ``b`` are registered (loaded when ``a_en``/``b_en``
    is high) and ``p`` is their product registered once more, two cycles after
    the operands; or ``None`` when it cannot. A PE whose operand and product
    registers have exactly that shape hands the multiply to it (a DSP block with
    its own input and output registers) and keeps its fabric operand registers only
    as the systolic pass-through. Without the hook the PE multiplies with ``*``.
    """
    hook = getattr(platform, "accelgen_multiplier", None)
    return hook(a_shape, b_shape, p_shape) if hook is not None else None


def _check_shapes(a_shape, b_shape, acc_bits):
    a_shape, b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
    if not isinstance(acc_bits, int) or acc_bits < product_shape(a_shape, b_shape).width:
        raise ValueError(f"Accumulator width must be an integer of at least the product width "
                         f"{product_shape(a_shape, b_shape).width}, not {acc_bits!r}")
    return a_shape, b_shape


class OSProcessingElement(wiring.Component):
    """Output-stationary PE: ``acc += a * b`` while the fold runs; on the fold's last
    step the final sum is copied to ``result``, where it stays (while the next fold
    accumulates) until the array's drain has read it.

    With N:M sparsity (``group`` = M > 1) ``a`` is a group of M consecutive-k values
    and ``b`` one kept value with its position ``idx`` in the group: the PE multiplies
    ``b.val`` by ``a[b.idx]``, so the pruned products are never computed.

    Parameters
    ----------
    a_shape, b_shape : Shape
        Operand element shapes.
    acc_bits : int
        Accumulator width; sums wrap modulo ``2**acc_bits``.
    group : int
        M of N:M sparsity; 1 for dense.

    Members
    -------
    a_in, b_in, ctl_in : In
        Operands (``a`` from the left, ``b`` from above) and the step control that
        travels with ``a``: ``valid``, ``first`` (start a new sum), ``last``.
    a_out, b_out, ctl_out : Out
        Registered copies for the right and lower neighbours.
    result : Out(signed(acc_bits))
        Final sum of the last completed fold.
    """

    LATENCY = 4

    def __init__(self, a_shape, b_shape, acc_bits, group=1):
        self._a_shape, self._b_shape = _check_shapes(a_shape, b_shape, acc_bits)
        self._acc_bits = acc_bits
        self._group = group
        a_port, b_port = os_operand_shapes(self._a_shape, self._b_shape, group)
        super().__init__({
            "a_in": In(a_port), "b_in": In(b_port), "ctl_in": In(OSControl),
            "a_out": Out(a_port), "b_out": Out(b_port), "ctl_out": Out(OSControl),
            "result": Out(signed(acc_bits)),
        })

    @property
    def latency(self) -> int:
        """Cycles from an operand on ``a_in`` to its product being in the sum."""
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()
        # No register here takes a reset: a soft reset (ResetInserter skips reset-less
        # signals) would otherwise fan out to every one of them in every PE. The operand,
        # product, sum and result registers are read under a valid flag (a fold's first
        # step overwrites the sum). The control registers only shift: what a reset leaves
        # in them moves on ahead of every later step (all stages advance each cycle) and
        # reaches a PE before the next job's first step, which overwrites the sum; a
        # result it latches is never read, since the array's drain chain (outside the
        # PEs) takes the reset.
        prod = Signal(product_shape(self._a_shape, self._b_shape), reset_less=True)
        ctl_p = Signal(OSControl, reset_less=True)
        ctl_o = Signal(OSControl, reset_less=True)
        acc = Signal(signed(self._acc_bits), reset_less=True)
        a_reg = Signal(self.a_out.shape(), reset_less=True)
        b_reg = Signal(self.b_out.shape(), reset_less=True)
        result = Signal(self.result.shape(), reset_less=True)
        m.d.comb += [self.a_out.eq(a_reg), self.b_out.eq(b_reg), self.result.eq(result),
                     self.ctl_out.eq(ctl_o)]

        if self._group == 1:
            a_val, b_val = a_reg, b_reg
            a_next, b_next = self.a_in, self.b_in
        else:
            a_val, b_val = a_reg[b_reg.idx], b_reg.val
            a_next, b_next = self.a_in[self.b_in.idx], self.b_in.val
        m.d.sync += [
            a_reg.eq(self.a_in),
            b_reg.eq(self.b_in),
            ctl_o.eq(self.ctl_in),
            ctl_p.eq(ctl_o),
        ]
        mul = registered_multiplier(platform, self._a_shape, self._b_shape, prod.shape())
        if mul is None:
            m.d.sync += prod.eq(a_val * b_val)
        else:
            # the DSP's operand registers hold what a_val/b_val hold
            m.submodules.mul = mul
            m.d.comb += [mul.a.eq(a_next), mul.b.eq(b_next), mul.a_en.eq(1), mul.b_en.eq(1),
                         prod.eq(mul.p)]
        # the product's fabric register, and the control delayed alongside
        prod_f = Signal.like(prod, name="prod_f", reset_less=True)
        ctl_f = Signal(OSControl, reset_less=True)
        m.d.sync += [prod_f.eq(prod), ctl_f.eq(ctl_p)]
        # the sum, or the product alone on a fold's first step: the select comes after the
        # adder, so the step flag (one register driving the whole accumulator) reaches only
        # the last LUT in front of the register, not the carry chain's inputs
        acc_next = Signal(signed(self._acc_bits))
        m.d.comb += acc_next.eq(Mux(ctl_f.first, prod_f, acc + prod_f))
        with m.If(ctl_f.valid):
            m.d.sync += acc.eq(acc_next)
            with m.If(ctl_f.last):
                m.d.sync += result.eq(acc_next)
        return m


class WSProcessingElement(wiring.Component):
    """Weight-stationary PE: ``psum_out = psum_in + a * w`` with ``w`` held in the PE.

    The next fold's weight is written to a shadow register while the current fold
    computes (weights travel down the column tagged with their row; the PE whose
    ``row`` matches keeps it) and becomes active when the ``swap`` flag, travelling
    with the fold's first ``a``, passes.

    Parameters
    ----------
    a_shape, b_shape : Shape
        Operand shapes (``b`` is the weight).
    acc_bits : int
        Partial-sum width; sums wrap modulo ``2**acc_bits``.
    row : int
        This PE's row in the array: the weight tag it answers to.
    tag_bits : int
        Width of the weight row tag.
    """

    LATENCY = 4

    def __init__(self, a_shape, b_shape, acc_bits, row, tag_bits):
        self._a_shape, self._b_shape = _check_shapes(a_shape, b_shape, acc_bits)
        self._acc_bits = acc_bits
        self._row = row
        super().__init__({
            "a_in": In(self._a_shape), "ctl_in": In(WSControl),
            "w_in": In(self._b_shape), "wload_in": In(1), "wtag_in": In(unsigned(tag_bits)),
            "psum_in": In(signed(acc_bits)),
            "a_out": Out(self._a_shape), "ctl_out": Out(WSControl),
            "w_out": Out(self._b_shape), "wload_out": Out(1), "wtag_out": Out(unsigned(tag_bits)),
            "psum_out": Out(signed(acc_bits)),
        })

    @property
    def latency(self) -> int:
        """Cycles from an operand on ``a_in`` to its product being in ``psum_out``; the
        matching ``psum_in`` must arrive ``latency - 1`` cycles after ``a_in``."""
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()
        # Only the control registers (ctl, wload) take a reset; operands, weights and
        # partial sums are read under those flags (weights are loaded before their
        # fold's swap), so a soft reset need not fan out to them.
        w_shadow = Signal(self._b_shape, reset_less=True)
        w_act = Signal(self._b_shape, reset_less=True)
        prod = Signal(product_shape(self._a_shape, self._b_shape), reset_less=True)
        prod_f = Signal.like(prod, name="prod_f", reset_less=True)   # its fabric register
        m.d.sync += prod_f.eq(prod)
        a_reg = Signal(self.a_out.shape(), reset_less=True)
        w_reg = Signal(self.w_out.shape(), reset_less=True)
        wtag_reg = Signal(self.wtag_out.shape(), reset_less=True)
        psum = Signal(self.psum_out.shape(), reset_less=True)
        m.d.comb += [self.a_out.eq(a_reg), self.w_out.eq(w_reg), self.wtag_out.eq(wtag_reg),
                     self.psum_out.eq(psum)]
        m.d.sync += [
            a_reg.eq(self.a_in),
            self.ctl_out.eq(self.ctl_in),
            w_reg.eq(self.w_in),
            self.wload_out.eq(self.wload_in),
            wtag_reg.eq(self.wtag_in),
            psum.eq(self.psum_in + prod_f),
        ]
        mul = registered_multiplier(platform, self._a_shape, self._b_shape, prod.shape())
        if mul is None:
            m.d.sync += prod.eq(a_reg * w_act)
        else:
            # the DSP's operand registers hold what a_out and w_act hold
            m.submodules.mul = mul
            m.d.comb += [mul.a.eq(self.a_in), mul.b.eq(w_shadow), mul.a_en.eq(1),
                         mul.b_en.eq(self.ctl_in.swap), prod.eq(mul.p)]
        with m.If(self.wload_in & (self.wtag_in == self._row)):
            m.d.sync += w_shadow.eq(self.w_in)
        with m.If(self.ctl_in.swap):
            m.d.sync += w_act.eq(w_shadow)
        return m
