"""Out-of-context harness: the accelerator with every port registered, behind four pins.

An out-of-context run measures the accelerator alone, so its figures must not
depend on pin placement or on I/O buffer delays. Every accelerator input is driven
by a flip-flop and every output is captured in a flip-flop, so all timing paths
of the accelerator start and end at registers inside the fabric.

The accelerator has hundreds of port bits (about 240 for an 8x8 array with a
64-bit stream; a 512-bit stream has over 1100), more than the pins of most
packages (the LFE5U-85F in caBGA381 has 205 user I/Os; an iCE40UP5K-SG48 has 39).
So the input registers form a shift chain loaded from one pin, and the output
registers feed a registered XOR-reduction tree (fan-in 4 per stage, one LUT level
between registers) that ends on one pin. Every accelerator output stays
observable, so synthesis removes nothing that the real design would keep, and the
harness adds no combinational path longer than one LUT.

Pins: ``clk``, ``rst`` (active high, asynchronous assert, synchronous release
through :class:`~amaranth.lib.cdc.ResetSynchronizer`), ``scan_in``, ``scan_out``.

The harness costs ``in_bits + out_bits`` flip-flops plus the XOR tree
(about ``out_bits / 3`` LUT4s and as many flip-flops); :meth:`OutOfContext.overhead`
returns these figures so reports can show the accelerator's own share.
"""

from __future__ import annotations

from amaranth import Cat, ClockDomain, ClockSignal, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["OutOfContext", "XOR_FAN_IN"]

#: Inputs per XOR-reduction stage: one LUT4 per output bit of a stage.
XOR_FAN_IN = 4


def _ports(component) -> tuple[list[Signal], list[Signal]]:
    ins, outs = [], []
    for name, member in component.signature.members.items():
        if not member.is_port:
            raise TypeError(f"Out-of-context harness needs flat signal ports, but member "
                            f"{name!r} of {type(component).__name__} is {member!r}")
        (ins if member.flow == In else outs).append(getattr(component, name))
    return ins, outs


def _xor_tree_sizes(width: int) -> list[int]:
    sizes = []
    while width > 1:
        width = -(-width // XOR_FAN_IN)
        sizes.append(width)
    return sizes


class OutOfContext(wiring.Component):
    """Wrap a design whose ports are plain signals in registered, pin-limited I/O.

    Parameters
    ----------
    design : wiring.Component
        The design under measurement; it must use the enclosing ``sync`` domain
        (e.g. ``GemmTop(config, own_domain=False)``) and have only flat signal ports.

    Members
    -------
    clk, rst, scan_in : In(1)
    scan_out : Out(1)
    """

    def __init__(self, design: wiring.Component):
        if not isinstance(design, wiring.Component):
            raise TypeError(f"Out-of-context design must be a wiring.Component, not {design!r}")
        self._design = design
        ins, outs = _ports(design)
        self._in_bits = sum(len(s) for s in ins)
        self._out_bits = sum(len(s) for s in outs)
        if self._out_bits == 0:
            raise ValueError(f"Out-of-context design {type(design).__name__} must have at "
                             f"least one output, or synthesis removes all of it")
        super().__init__({"clk": In(1), "rst": In(1), "scan_in": In(1), "scan_out": Out(1)})

    @property
    def design(self) -> wiring.Component:
        return self._design

    @property
    def in_bits(self) -> int:
        """Accelerator input bits (each behind one flip-flop)."""
        return self._in_bits

    @property
    def out_bits(self) -> int:
        """Accelerator output bits (each captured in one flip-flop)."""
        return self._out_bits

    def overhead(self) -> dict[str, int]:
        """Flip-flops and LUT4s the harness adds around the design (upper bounds).

        Synthesis may trim input-chain flip-flops that drive unused inputs, so the
        true overhead can be smaller.
        """
        tree = _xor_tree_sizes(self._out_bits)
        return {"FF": self._in_bits + self._out_bits + sum(tree) + 1, "LUT4": sum(tree)}

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.d.comb += ClockSignal("sync").eq(self.clk)
        m.submodules.rst_sync = ResetSynchronizer(self.rst, domain="sync")
        m.submodules.design = design = self._design
        ins, outs = _ports(design)

        # Input registers: one shift chain. reset_less: these are data, and a reset
        # would add a high-fanout net that the real design does not have.
        chain = Signal(self._in_bits, reset_less=True)
        m.d.sync += chain.eq(Cat(self.scan_in, chain[:-1]))
        lsb = 0
        for port in ins:
            m.d.comb += port.eq(chain[lsb:lsb + len(port)])
            lsb += len(port)

        # Output registers, then a registered XOR tree.
        level = Signal(self._out_bits, reset_less=True)
        m.d.sync += level.eq(Cat(*outs))
        for size in _xor_tree_sizes(self._out_bits):
            nxt = Signal(size, reset_less=True)
            for i in range(size):
                m.d.sync += nxt[i].eq(level[i * XOR_FAN_IN:(i + 1) * XOR_FAN_IN].xor())
            level = nxt
        out = Signal(reset_less=True)
        m.d.sync += out.eq(level[0])
        m.d.comb += self.scan_out.eq(out)
        return m

