"""The systolic array: R x C PEs with input skew and output de-skew inside.

One *step* per cycle enters at the array boundary, unskewed: a vector of R ``a``
values (one per row) with its control, a vector of C ``b`` values (one per
column), and a caller-defined ``tag``. The array skews them (row r and column c
delayed r and c cycles), runs them through the PEs and hands back whole result
rows, de-skewed, each with the tag of the step that produced it:

* output-stationary: ``b`` steps stream with ``a`` steps; after a fold's last step
  (tag taken from it) the array emits the fold's R result rows, row 0 first, one
  per cycle, ``latency`` cycles after that last step (row r at ``latency + r``).
  Consecutive last steps must be at least ``min_fold_cycles`` apart, so that a
  fold's results are read before the next fold overwrites them.
* weight-stationary: ``b`` steps load the *next* fold's weights (``b.load`` with
  the target row in ``b.row``) while ``a`` steps of the current fold stream; a
  fold's first ``a`` step carries ``swap``. Each valid ``a`` step yields one result
  row (its tag attached) ``latency`` cycles later. A fold's weights must be
  loaded strictly before its first ``a`` step, and after the previous fold's
  first ``a`` step.
"""

from amaranth import Module, Signal, Array, unsigned, signed, Shape
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from .pe import (OSProcessingElement, WSProcessingElement, OSControl, WSControl,
                 os_operand_shapes)

__all__ = ["SystolicArray"]


def _delay(m, sig, n, name, *, reset_less=False):
    """``sig`` delayed by ``n`` registers (``n == 0`` returns ``sig``). Data delays (and
    OS control's) are ``reset_less``: a soft reset need not reach them."""
    cur = sig
    for i in range(n):
        nxt = Signal(sig.shape(), name=f"{name}_d{i + 1}", reset_less=reset_less)
        m.d.sync += nxt.eq(cur)
        cur = nxt
    return cur


class SystolicArray(wiring.Component):
    """R x C systolic array for one dataflow.

    Parameters
    ----------
    rows, cols : int
        Array size.
    a_shape, b_shape : Shape
        Operand element shapes.
    acc_bits : int
        Accumulator / partial-sum width.
    dataflow : str
        ``"os"`` or ``"ws"``.
    tag_shape : ShapeLike
        Caller-defined tag carried from a step to its result rows.

    Members
    -------
    a : In(StructLayout)
        ``data`` (R elements) and ``ctl`` (:data:`OSControl` or :data:`WSControl`).
    b : In(StructLayout)
        ``data`` (C elements), ``load`` and ``row`` (weight loading, WS only).
    tag : In(tag_shape)
        Tag of this step (OS: sampled on a valid last step; WS: on a valid step).
    o_valid : Out(1)
    o_data : Out(ArrayLayout(signed(acc_bits), cols))
    o_tag : Out(tag_shape)
    o_row : Out(range(rows))
        OS: row within the fold's tile; WS: zero.
    """

    def __init__(self, *, rows, cols, a_shape, b_shape, acc_bits, dataflow, tag_shape, group=1):
        if dataflow not in ("os", "ws"):
            raise ValueError(f"Dataflow must be 'os' or 'ws', not {dataflow!r}")
        for name, v in (("rows", rows), ("cols", cols)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"Array {name} must be a positive integer, not {v!r}")
        self._rows, self._cols = rows, cols
        self._a_shape, self._b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        self._acc_bits = acc_bits
        self._dataflow = dataflow
        self._tag_shape = tag_shape
        self._row_bits = max(1, bits_for(rows - 1))
        if group != 1 and dataflow != "os":
            raise ValueError(f"N:M sparsity (group {group}) needs the 'os' dataflow, "
                             f"not {dataflow!r}")
        self._group = group
        ctl = OSControl if dataflow == "os" else WSControl
        a_el, b_el = os_operand_shapes(self._a_shape, self._b_shape, group)
        super().__init__({
            "a": In(data.StructLayout({"data": data.ArrayLayout(a_el, rows), "ctl": ctl})),
            "b": In(data.StructLayout({"data": data.ArrayLayout(b_el, cols),
                                       "load": 1, "row": unsigned(self._row_bits)})),
            "tag": In(tag_shape),
            "o_valid": Out(1),
            "o_data": Out(data.ArrayLayout(signed(acc_bits), cols)),
            "o_tag": Out(tag_shape),
            "o_row": Out(range(rows)),
        })

    @property
    def latency(self) -> int:
        """OS: cycles from a fold's last step to its row 0 on the outputs.
        WS: cycles from an ``a`` step to its result row on the outputs."""
        if self._dataflow == "os":
            return self._cols + OSProcessingElement.LATENCY
        return self._rows + self._cols + WSProcessingElement.LATENCY - 1

    @property
    def min_fold_cycles(self) -> int:
        """OS: least spacing of consecutive last steps. WS: least spacing of
        consecutive fold starts (weight loading takes one step per row)."""
        if self._dataflow == "os":
            return max(self._rows, self._cols)
        return self._rows

    def elaborate(self, platform):
        m = Module()
        R, C = self._rows, self._cols

        # Input skew: row r of `a` (with its control) and column c of `b` delayed r / c cycles.
        a_skew = [_delay(m, self.a.data[r], r, f"a_skew{r}", reset_less=True) for r in range(R)]
        # (OS: the control skew is reset-less like the PEs' control, see
        # OSProcessingElement; WS's weight swap flags keep their reset)
        ctl_skew = [_delay(m, self.a.ctl, r, f"ctl_skew{r}",
                           reset_less=self._dataflow == "os") for r in range(R)]
        b_skew = [_delay(m, self.b.data[c], c, f"b_skew{c}", reset_less=True) for c in range(C)]

        if self._dataflow == "os":
            self._elaborate_os(m, a_skew, ctl_skew, b_skew)
        else:
            self._elaborate_ws(m, a_skew, ctl_skew, b_skew)
        return m

    def _elaborate_os(self, m, a_skew, ctl_skew, b_skew):
        R, C = self._rows, self._cols
        pe = [[OSProcessingElement(self._a_shape, self._b_shape, self._acc_bits, self._group)
               for c in range(C)] for r in range(R)]
        for r in range(R):
            for c in range(C):
                m.submodules[f"pe_{r}_{c}"] = p = pe[r][c]
                if c == 0:
                    m.d.comb += [p.a_in.eq(a_skew[r]), p.ctl_in.eq(ctl_skew[r])]
                else:
                    m.d.comb += [p.a_in.eq(pe[r][c - 1].a_out), p.ctl_in.eq(pe[r][c - 1].ctl_out)]
                m.d.comb += p.b_in.eq(b_skew[c] if r == 0 else pe[r - 1][c].b_out)

        # Drain: row r of the results is complete `latency - 1 + r` cycles after the last
        # step; read it through a per-column row multiplexer, one row per cycle. The row
        # select is a register set a cycle ahead (from the start flag's previous stage),
        # one copy per column: each copy steps from its own value, so synthesis keeps them
        # apart and no single net fans out to every column's multiplexer.
        last = Signal()
        m.d.comb += last.eq(self.a.ctl.valid & self.a.ctl.last)
        start_pre = _delay(m, last, self.latency - 2, "drain_start")
        start = Signal(name="drain_start")
        m.d.sync += start.eq(start_pre)
        start_tag = _delay(m, self.tag, self.latency - 1, "drain_tag", reset_less=True)
        active = Signal()
        tag_hold = Signal(self.tag.shape(), reset_less=True)
        cur_tag = Signal.like(self.tag)
        # (reset-less: set to 0 a cycle before every drain, read only while draining)
        sel = [Signal(range(R), name=f"drain_sel{c}", reset_less=True) for c in range(C)]
        o_data = Signal(self.o_data.shape(), reset_less=True)
        o_tag = Signal(self.o_tag.shape(), reset_less=True)
        m.d.comb += [self.o_data.eq(o_data), self.o_tag.eq(o_tag), cur_tag.eq(tag_hold)]
        with m.If(start):
            m.d.comb += cur_tag.eq(start_tag)
        # Each copy counts up from the 0 set a cycle before a drain and rests at R - 1 (it
        # steps every cycle of a drain), so no drain flag reaches the copies' enables.
        for c in range(C):
            with m.If(start_pre):
                m.d.sync += sel[c].eq(0)
            with m.Elif(sel[c] != R - 1):
                m.d.sync += sel[c].eq(sel[c] + 1)
        m.d.sync += self.o_valid.eq(start | active)
        o_row = Signal(self.o_row.shape(), reset_less=True)     # read under o_valid
        m.d.comb += self.o_row.eq(o_row)
        with m.If(start | active):
            m.d.sync += [o_row.eq(sel[0]), o_tag.eq(cur_tag)]
            for c in range(C):
                col = Array(pe[r][c].result for r in range(R))
                m.d.sync += o_data[c].eq(col[sel[c]])
            with m.If(start):
                m.d.sync += tag_hold.eq(start_tag)
            if R == 1:
                m.d.sync += active.eq(0)
            else:
                m.d.sync += active.eq(sel[0] != R - 1)

    def _elaborate_ws(self, m, a_skew, ctl_skew, b_skew):
        R, C = self._rows, self._cols
        load_skew = [_delay(m, self.b.load, c, f"load_skew{c}") for c in range(C)]
        row_skew = [_delay(m, self.b.row, c, f"wrow_skew{c}", reset_less=True) for c in range(C)]
        pe = [[WSProcessingElement(self._a_shape, self._b_shape, self._acc_bits, r, self._row_bits)
               for c in range(C)] for r in range(R)]
        for r in range(R):
            for c in range(C):
                m.submodules[f"pe_{r}_{c}"] = p = pe[r][c]
                if c == 0:
                    m.d.comb += [p.a_in.eq(a_skew[r]), p.ctl_in.eq(ctl_skew[r])]
                else:
                    m.d.comb += [p.a_in.eq(pe[r][c - 1].a_out), p.ctl_in.eq(pe[r][c - 1].ctl_out)]
                if r == 0:
                    m.d.comb += [p.w_in.eq(b_skew[c]), p.wload_in.eq(load_skew[c]),
                                 p.wtag_in.eq(row_skew[c]), p.psum_in.eq(0)]
                else:
                    up = pe[r - 1][c]
                    m.d.comb += [p.w_in.eq(up.w_out), p.wload_in.eq(up.wload_out),
                                 p.wtag_in.eq(up.wtag_out), p.psum_in.eq(up.psum_out)]
        # De-skew: column c leaves the bottom c cycles after column 0; delay it C-1-c more.
        cols = [_delay(m, pe[R - 1][c].psum_out, C - 1 - c, f"deskew{c}", reset_less=True)
                for c in range(C)]
        valid = Signal()
        m.d.comb += valid.eq(self.a.ctl.valid)
        # Bottom row visible `R + 2 + c` cycles after the step, de-skewed at `R + C + 1`;
        # one more register to the outputs.
        v_d = _delay(m, valid, self.latency - 1, "res_valid")
        t_d = _delay(m, self.tag, self.latency - 1, "res_tag", reset_less=True)
        o_data = Signal(self.o_data.shape(), reset_less=True)
        o_tag = Signal(self.o_tag.shape(), reset_less=True)
        m.d.comb += [self.o_data.eq(o_data), self.o_tag.eq(o_tag)]
        m.d.sync += [self.o_valid.eq(v_d), o_tag.eq(t_d), self.o_row.eq(0)]
        for c in range(C):
            m.d.sync += o_data[c].eq(cols[c])
