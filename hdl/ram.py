"""Scratchpad RAM with block-RAM output registers: one write port, read ports of two
or three cycles' latency.

A read address presented in cycle ``t`` gives its word in cycle ``t + latency``: the
address is registered at the memory array, and the word once more at its output.
That second register is a block RAM's output register (DP16KD ``OUTREG`` on ECP5)
when the platform offers the ``accelgen_memory`` hook; without it (simulation,
Verilog, other families) it is an Amaranth memory read port followed by a fabric
flip-flop, with the same cycle behaviour. On an ECP5 -6 part the array's clock-to-out
without the output register is 5.8 ns, a large part of a 150 MHz cycle; the output
register cuts it to about 1 ns.

With ``latency=3`` a third register, in the fabric, follows: the block RAM output
register sits in the block RAM column, so its word reaches the logic that uses it
over long routing; memories whose words go into an adder or a multiplier in their
first cycle take the extra register instead of that routing.

Hook contract: ``platform.accelgen_memory(width, depth, read_ports)`` returns a
component with inputs ``w_addr``, ``w_data``, ``w_en``, ``r_addr`` (an array of
``read_ports`` addresses) and output ``r_data`` (as many words), behaving as
described, or ``None`` when it cannot build that memory. Called with
``read_enable=True`` (only then), the component also has an input ``r_en``: when it
is low the read side holds (address register and output register keep their
contents), so a stalled pipeline can keep its reads in flight. Writes and reads of the
same address in the same cycle are not used (the read may return either word).
"""

from amaranth import Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

__all__ = ["PipelinedRAM", "READ_LATENCY"]

#: Cycles from a read address to its word (the default ``latency``).
READ_LATENCY = 2


class PipelinedRAM(wiring.Component):
    """Parameters
    ----------
    width, depth : int
        Word width and number of words.
    read_ports : int
        Independent read ports (each may be a copy of the memory).
    primitive : bool
        Whether the platform's block RAM (``accelgen_memory``) may be used.
    latency : int
        2, or 3 for a fabric register after the block RAM's output register.
    read_enable : bool
        Add the ``r_en`` input: the read pipeline advances only while it is high.

    Members
    -------
    w_addr, w_data, w_en : In
    r_addr : In(ArrayLayout(address, read_ports))
    r_data : Out(ArrayLayout(word, read_ports))
        ``r_data[i]`` in cycle ``t + latency`` is the word at ``r_addr[i]`` of cycle ``t``
        (with ``read_enable``: ``latency`` cycles with ``r_en`` high later, counting
        cycle ``t``, in which ``r_en`` must be high for the address to be taken).
    r_en : In(1), only with ``read_enable``
    """

    def __init__(self, width: int, depth: int, read_ports: int = 1, *, primitive: bool = True,
                 latency: int = READ_LATENCY, read_enable: bool = False):
        for name, value in (("width", width), ("depth", depth), ("read_ports", read_ports)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"RAM {name} must be a positive integer, not {value!r}")
        if latency not in (2, 3):
            raise ValueError(f"RAM read latency must be 2 or 3 cycles, not {latency!r}")
        self.width, self.depth, self.read_ports = width, depth, read_ports
        self.primitive, self.latency = primitive, latency
        self.read_enable = bool(read_enable)
        aw = max(1, bits_for(depth - 1))
        members = {
            "w_addr": In(aw), "w_data": In(width), "w_en": In(1),
            "r_addr": In(data.ArrayLayout(unsigned(aw), read_ports)),
            "r_data": Out(data.ArrayLayout(unsigned(width), read_ports)),
        }
        if self.read_enable:
            members["r_en"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        # the read registers hold data only: reset-less (no soft-reset fanout to them)
        layout = data.ArrayLayout(unsigned(self.width), self.read_ports)
        words = Signal(layout, reset_less=True)

        def load(reg, value):       # a read register: loads while the read side advances
            if self.read_enable:
                with m.If(self.r_en):
                    m.d.sync += reg.eq(value)
            else:
                m.d.sync += reg.eq(value)

        if self.latency == 2:
            m.d.comb += self.r_data.eq(words)
        else:       # the extra fabric register
            out = Signal(layout, reset_less=True)
            load(out, words)
            m.d.comb += self.r_data.eq(out)
        hook = getattr(platform, "accelgen_memory", None) if self.primitive else None
        impl = None
        if hook is not None:
            impl = (hook(self.width, self.depth, self.read_ports, read_enable=True)
                    if self.read_enable else hook(self.width, self.depth, self.read_ports))
        if impl is not None:
            m.submodules.impl = impl
            m.d.comb += [impl.w_addr.eq(self.w_addr), impl.w_data.eq(self.w_data),
                         impl.w_en.eq(self.w_en)]
            if self.read_enable:
                m.d.comb += impl.r_en.eq(self.r_en)
            for i in range(self.read_ports):
                m.d.comb += [impl.r_addr[i].eq(self.r_addr[i]), words[i].eq(impl.r_data[i])]
            return m
        m.submodules.mem = mem = Memory(shape=unsigned(self.width), depth=self.depth, init=[])
        wr = mem.write_port()
        m.d.comb += [wr.addr.eq(self.w_addr), wr.data.eq(self.w_data), wr.en.eq(self.w_en)]
        for i in range(self.read_ports):
            rd = mem.read_port()
            m.d.comb += rd.addr.eq(self.r_addr[i])
            if self.read_enable:
                m.d.comb += rd.en.eq(self.r_en)
            load(words[i], rd.data)                 # the output register
        return m
