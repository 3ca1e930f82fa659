"""AXI4-Lite slave register bank generated from a :class:`~.regs.RegisterMap`.

* Writes: the address and data channels are accepted together (both valid), the
  response follows the next cycle. Writes to ``RW`` registers honour WSTRB (with the
  map's ``rw_fields_only``, only their fields' bits are stored; the rest read 0);
  ``WO`` registers produce a one-cycle strobe, and hold the written value for that
  cycle only (0 otherwise), so a bit of a ``WO`` register is itself a pulse register.
* Reads: two cycles from AR to R (the register mux is pipelined); the values are
  those of the AR handshake cycle. Reading a counter's ``_LO`` word latches its
  ``_HI`` word so a 64-bit value is read coherently.
* Unmapped addresses, and writes to read-only registers, answer SLVERR; reads of
  write-only registers return zero with OKAY.
"""

from amaranth import Module, Signal, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .regs import RegisterMap

__all__ = ["AXI4LiteSignature", "AXI4LiteCSR", "RESP_OKAY", "RESP_SLVERR", "axi_top_members",
           "axi_top_domain", "connect_axil"]

RESP_OKAY = 0b00
RESP_SLVERR = 0b10


class AXI4LiteSignature(wiring.Signature):
    """AXI4-Lite, from the master's point of view (a slave uses ``In(...)``)."""

    def __init__(self, addr_width: int, data_width: int = 32):
        if data_width not in (32, 64):
            raise ValueError(f"AXI4-Lite data width must be 32 or 64, not {data_width!r}")
        self.addr_width, self.data_width = addr_width, data_width
        super().__init__({
            "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wvalid": Out(1),
            "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(data_width), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })


class AXI4LiteCSR(wiring.Component):
    """Register bank for ``regmap``.

    Members
    -------
    bus : In(AXI4LiteSignature)
    rw_<NAME> : Out(32)
        Current value of each ``RW`` register.
    wo_<NAME>, wo_<NAME>_stb : Out(32), Out(1)
        Value and strobe of each ``WO`` register write, for one cycle; the value is 0
        in every other cycle, so each bit is a one-cycle pulse straight from a register.
    ro_<NAME> : In(32)
        Value of each non-constant ``RO`` register (except counter words).
    cnt_<NAME> : In(64)
        Value of each 64-bit counter (the ``_LO``/``_HI`` pair).
    """

    #: words per first-stage read group (2**GROUP_BITS)
    GROUP_BITS = 3

    def __init__(self, regmap: RegisterMap):
        if not isinstance(regmap, RegisterMap):
            raise TypeError(f"Register map must be a RegisterMap, not {regmap!r}")
        self._map = regmap
        self._counter_words = {f"{c}_{half}" for c in regmap.counters for half in ("LO", "HI")}
        members = {"bus": In(AXI4LiteSignature(regmap.addr_width))}
        for r in regmap.registers:
            if r.access == "RW":
                members[f"rw_{r.name}"] = Out(32, init=r.reset)
            elif r.access == "WO":
                members[f"wo_{r.name}"] = Out(32)
                members[f"wo_{r.name}_stb"] = Out(1)
            elif not r.const and r.name not in self._counter_words:
                members[f"ro_{r.name}"] = In(32)
        for c in regmap.counters:
            members[f"cnt_{c}"] = In(64)
        super().__init__(members)

    @property
    def regmap(self) -> RegisterMap:
        return self._map

    def _read_value(self, r, hi_latch):
        """What reading register ``r`` returns."""
        if r.access == "RW":
            return getattr(self, f"rw_{r.name}")
        if r.access == "WO":
            return 0
        if r.const:
            return r.reset
        if r.name in self._counter_words:
            cname, half = r.name.rsplit("_", 1)
            return hi_latch[cname] if half == "HI" else getattr(self, f"cnt_{cname}")[:32]
        return getattr(self, f"ro_{r.name}")

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        rmap = self._map

        # -- write channel ---------------------------------------------------------------
        for r in rmap.registers:
            if r.access == "WO":
                m.d.sync += [getattr(self, f"wo_{r.name}").eq(0),
                             getattr(self, f"wo_{r.name}_stb").eq(0)]
        accept_w = Signal()
        m.d.comb += [
            accept_w.eq(bus.awvalid & bus.wvalid & ~bus.bvalid),
            bus.awready.eq(accept_w), bus.wready.eq(accept_w),
        ]
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        with m.If(accept_w):
            m.d.sync += [bus.bvalid.eq(1), bus.bresp.eq(RESP_SLVERR)]
            waddr = bus.awaddr[2:]
            with m.Switch(waddr):
                for r in rmap.registers:
                    if r.access == "RO":
                        continue
                    with m.Case(r.offset >> 2):
                        m.d.sync += bus.bresp.eq(RESP_OKAY)
                        if r.access == "RW" and rmap.rw_fields_only and r.fields:
                            # bits outside the fields are never written: constant 0
                            reg = getattr(self, f"rw_{r.name}")
                            for byte in range(4):
                                with m.If(bus.wstrb[byte]):
                                    for f in r.fields:
                                        lo = max(f.lsb, byte * 8)
                                        hi = min(f.lsb + f.width, (byte + 1) * 8)
                                        if lo < hi:
                                            m.d.sync += reg[lo:hi].eq(bus.wdata[lo:hi])
                        elif r.access == "RW":
                            reg = getattr(self, f"rw_{r.name}")
                            for byte in range(4):
                                with m.If(bus.wstrb[byte]):
                                    m.d.sync += reg[byte * 8:(byte + 1) * 8].eq(
                                        bus.wdata[byte * 8:(byte + 1) * 8])
                        else:
                            m.d.sync += [getattr(self, f"wo_{r.name}").eq(bus.wdata),
                                         getattr(self, f"wo_{r.name}_stb").eq(1)]

        # -- read channel ----------------------------------------------------------------
        # Two stages, so no path runs from the address through the whole register mux:
        # at the AR handshake every group of GROUP words is muxed by the word's low
        # address bits into a register (they load every cycle; the handshake cycle's
        # values are the ones used), with the high bits and the "mapped" flag; the cycle
        # after, the group register named by the high bits becomes RDATA and RVALID rises.
        words = {r.offset >> 2: r for r in rmap.registers}
        lo_bits = min(self.GROUP_BITS, rmap.addr_width - 2)
        groups = sorted({w >> lo_bits for w in words})
        idx = bus.araddr[2:]
        group_q = {g: Signal(32, name=f"rd_group{g}") for g in groups}
        hi_q = Signal(max(1, rmap.addr_width - 2 - lo_bits))
        mapped_q = Signal()
        pending = Signal()
        hi_latch = {c: Signal(32, name=f"hi_latch_{c}") for c in rmap.counters}
        accept_r = Signal()
        m.d.comb += [bus.arready.eq(~bus.rvalid & ~pending),
                     accept_r.eq(bus.arvalid & bus.arready)]
        m.d.sync += [hi_q.eq(idx[lo_bits:]), mapped_q.eq(0), pending.eq(accept_r)]
        with m.Switch(idx):
            for w in words:
                with m.Case(w):
                    m.d.sync += mapped_q.eq(1)
        for g in groups:
            m.d.sync += group_q[g].eq(0)
            with m.Switch(idx[:lo_bits]):
                for w, r in words.items():
                    if w >> lo_bits != g:
                        continue
                    with m.Case(w & ((1 << lo_bits) - 1)):
                        m.d.sync += group_q[g].eq(self._read_value(r, hi_latch))
        # reading a counter's _LO word latches its _HI word, for a coherent 64-bit read: the
        # cycle after the read's AR handshake (under `pending` and a registered "the address
        # is the _LO word"), from a copy of _HI taken the handshake's cycle, as _LO is
        for c in rmap.counters:
            is_lo = Signal(name=f"is_lo_{c}")
            hi_d = Signal(32, name=f"hi_d_{c}", reset_less=True)
            m.d.sync += [is_lo.eq(idx == rmap.offset(f"{c}_LO") >> 2),
                         hi_d.eq(getattr(self, f"cnt_{c}")[32:])]
            with m.If(pending & is_lo):
                m.d.sync += hi_latch[c].eq(hi_d)
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        with m.If(pending):
            m.d.sync += [bus.rvalid.eq(1), bus.rdata.eq(0),
                         bus.rresp.eq(Mux(mapped_q, RESP_OKAY, RESP_SLVERR))]
            with m.Switch(hi_q):
                for g in groups:
                    with m.Case(g):
                        m.d.sync += bus.rdata.eq(group_q[g])
        return m


_AXIL_IN = ("awaddr", "awprot", "awvalid", "wdata", "wstrb", "wvalid", "bready",
            "araddr", "arprot", "arvalid", "rready")
_AXIL_OUT = ("awready", "wready", "bresp", "bvalid", "arready", "rdata", "rresp", "rvalid")


def axi_top_members(addr_width: int, stream_bits: int, own_domain: bool) -> dict:
    """Flat top-level members with the AXI names: ``aclk``/``aresetn`` (with
    ``own_domain``), an AXI4-Lite slave ``s_axil_*``, an AXI4-Stream slave ``s_axis_*``
    and master ``m_axis_*``. Flat, so the Verilog ports carry exactly these names."""
    aw, sb = addr_width, stream_bits
    members = {"aclk": In(1), "aresetn": In(1)} if own_domain else {}
    members.update({
        "s_axil_awaddr": In(aw), "s_axil_awprot": In(3), "s_axil_awvalid": In(1),
        "s_axil_awready": Out(1),
        "s_axil_wdata": In(32), "s_axil_wstrb": In(4), "s_axil_wvalid": In(1),
        "s_axil_wready": Out(1),
        "s_axil_bresp": Out(2), "s_axil_bvalid": Out(1), "s_axil_bready": In(1),
        "s_axil_araddr": In(aw), "s_axil_arprot": In(3), "s_axil_arvalid": In(1),
        "s_axil_arready": Out(1),
        "s_axil_rdata": Out(32), "s_axil_rresp": Out(2), "s_axil_rvalid": Out(1),
        "s_axil_rready": In(1),
        "s_axis_tdata": In(sb), "s_axis_tlast": In(1), "s_axis_tvalid": In(1),
        "s_axis_tready": Out(1),
        "m_axis_tdata": Out(sb), "m_axis_tlast": Out(1), "m_axis_tvalid": Out(1),
        "m_axis_tready": In(1),
    })
    return members


def axi_top_domain(m, top) -> None:
    """The ``sync`` domain of a top with its own domain: ``aclk``, active-low ``aresetn``."""
    from amaranth import ClockDomain, ClockSignal, ResetSignal
    m.domains.sync = ClockDomain("sync")
    m.d.comb += [ClockSignal("sync").eq(top.aclk), ResetSignal("sync").eq(~top.aresetn)]


def connect_axil(m, top, bus) -> None:
    """Wire a top's flat ``s_axil_*`` ports to an AXI4-Lite slave interface ``bus``."""
    for name in _AXIL_IN:
        m.d.comb += getattr(bus, name).eq(getattr(top, f"s_axil_{name}"))
    for name in _AXIL_OUT:
        m.d.comb += getattr(top, f"s_axil_{name}").eq(getattr(bus, name))
