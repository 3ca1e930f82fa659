"""The dense GEMM accelerator top: AXI4-Lite CSRs, AXI4-Stream in and out.

Top-level ports carry the AXI names (``aclk``, ``aresetn``, ``s_axil_*``,
``s_axis_*``, ``m_axis_*``) so the Verilog drops into a Vivado block design, a
LiteX SoC or a cocotbext-axi testbench without glue. ``aresetn`` is active low
and synchronous.
"""

from amaranth import Module, Signal, ResetInserter, ResetSignal
from amaranth.lib import wiring

from .config import GemmConfig
from .regs import gemm_register_map
from .axil import AXI4LiteCSR, axi_top_members, axi_top_domain, connect_axil
from .gemm import GemmCore

__all__ = ["GemmTop"]


class GemmTop(wiring.Component):
    """Parameters
    ----------
    config : GemmConfig
    domain : str
        ``"axi"`` (default): the top creates its clock domain from ``aclk`` and
        ``aresetn``. ``"sync"``: the top uses the enclosing design's ``sync`` domain
        (board wrappers, unit tests) and ``aclk``/``aresetn`` are left unused.
    """

    def __init__(self, config: GemmConfig, *, own_domain: bool = True):
        if not isinstance(config, GemmConfig):
            raise TypeError(f"GemmTop config must be a GemmConfig, not {config!r}")
        self._cfg = config
        self._own_domain = own_domain
        self._regmap = gemm_register_map(config)
        super().__init__(axi_top_members(self._regmap.addr_width, config.stream_bits,
                                         own_domain))

    @property
    def config(self) -> GemmConfig:
        return self._cfg

    @property
    def regmap(self):
        return self._regmap

    def elaborate(self, platform):
        m = Module()
        if self._own_domain:
            axi_top_domain(m, self)

        m.submodules.csr = csr = AXI4LiteCSR(self._regmap)
        soft_reset = Signal()
        core = GemmCore(self._cfg)
        m.submodules.core = core = ResetInserter(soft_reset)(core)

        connect_axil(m, self, csr.bus)

        ctrl = self._regmap["CTRL"]
        start_bit, reset_bit = ctrl.field("START").lsb, ctrl.field("SOFT_RESET").lsb
        status = self._regmap["STATUS"]
        m.d.comb += [
            soft_reset.eq(csr.wo_CTRL[reset_bit]),     # a register: see AXI4LiteCSR
            core.start.eq(csr.wo_CTRL[start_bit] & ~csr.wo_CTRL[reset_bit]),
            core.hard_reset.eq(ResetSignal()),
            core.m.eq(csr.rw_M), core.k.eq(csr.rw_K), core.n.eq(csr.rw_N),
            core.mode.eq(csr.rw_MODE), core.rq_mult.eq(csr.rw_RQ_MULT),
            core.rq_shift.eq(csr.rw_RQ_SHIFT),
            csr.ro_STATUS.eq(core.busy << status.field("BUSY").lsb
                             | core.done << status.field("DONE").lsb
                             | core.error << status.field("ERROR").lsb
                             | core.error_code << status.field("ERROR_CODE").lsb),
            csr.ro_JOBS.eq(core.jobs),
            csr.cnt_JOB_CYCLES.eq(core.job_cycles),
            csr.cnt_COMPUTE_CYCLES.eq(core.compute_cycles),
            csr.cnt_IN_STALL_CYCLES.eq(core.in_stall_cycles),
            csr.cnt_OUT_STALL_CYCLES.eq(core.out_stall_cycles),
            csr.cnt_MACS.eq(core.macs),
            core.s_data.eq(self.s_axis_tdata), core.s_last.eq(self.s_axis_tlast),
            core.s_valid.eq(self.s_axis_tvalid), self.s_axis_tready.eq(core.s_ready),
            self.m_axis_tdata.eq(core.m_data), self.m_axis_tlast.eq(core.m_last),
            self.m_axis_tvalid.eq(core.m_valid), core.m_ready.eq(self.m_axis_tready),
        ]
        return m
