"""UART bridge: a host reaches the accelerator's AXI4-Lite and AXI4-Stream ports over a serial line.

Protocol (version 1)
--------------------
8N1 bytes. The host sends a command; the bridge answers every command with a
response that starts with the command's opcode. Multi-byte fields are
little-endian. ``B`` is the stream width in bytes (``stream_bits / 8``), ``D`` the
depth of the bridge's input FIFO in beats.

======  ===========  ==============================  =====================================
opcode  command      request after the opcode        response
======  ===========  ==============================  =====================================
0x00    INFO         --                              ``00 version B D:u16``
0x01    CSR write    ``addr:u16 data:u32``           ``01 bresp``
0x02    CSR read     ``addr:u16``                    ``02 rresp data:u32``
0x03    SEND         ``flags:u8 count:u8``, then     ``03 free:u16`` once the last byte
                     ``(count+1)`` beats of B bytes  is queued
0x04    RECV         ``max:u8``                      up to ``max+1`` beat records, then
                                                     the terminator ``04``
0x05    STATUS       --                              ``05 free:u16 flags:u8``
======  ===========  ==============================  =====================================

* ``bresp``/``rresp`` are the AXI responses: 0 OKAY, 2 SLVERR (unmapped address).
* SEND queues beats for the accelerator's input stream; ``flags`` bit 0 sets
  TLAST on the command's last beat. The FIFO drains into the accelerator on its
  own, so the bridge keeps answering commands while the accelerator stalls.
  Flow control is by credit: ``free`` is the FIFO space in beats; the host sends
  at most ``free`` beats (``D`` at first) before asking again (SEND's response or
  STATUS). A beat that arrives with the FIFO full is dropped and sets the sticky
  overflow flag.
* RECV forwards beats of the accelerator's output stream. A beat record is
  ``0x80 | last`` followed by B bytes. The bridge stops after ``max+1`` beats,
  after a beat with TLAST, or as soon as no beat is waiting, and then sends
  ``04``. It never waits for the accelerator, so the host polls.
* STATUS ``flags``: bit 0 overflow (cleared by this read), bit 1 an output beat
  is waiting, bit 2 a UART framing error happened since the last STATUS.
* An unknown opcode answers ``0xEE``. If a command stays incomplete for
  ``timeout`` clock cycles (no byte arrives), the bridge drops it and waits for
  a new opcode: a host that lost sync pauses, then sends INFO.

:class:`BridgeProtocol` builds requests and parses responses on the host side.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from amaranth import Cat, Const, Module, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from accelgen.hdl.axil import axi_top_members

__all__ = ["UARTBridge", "BridgeProtocol", "VERSION", "OP", "RESP_UNKNOWN"]

VERSION = 1
OP = {"INFO": 0x00, "WRITE": 0x01, "READ": 0x02, "SEND": 0x03, "RECV": 0x04, "STATUS": 0x05}
RESP_UNKNOWN = 0xEE
BEAT_TAG = 0x80


def axi_master_members(addr_width: int, stream_bits: int) -> dict:
    """The mirror of the accelerator's AXI ports (:func:`accelgen.hdl.axil.axi_top_members`):
    an AXI4-Lite master ``m_axil_*``, the stream into the accelerator as ``m_axis_*`` and
    the stream out of it as ``s_axis_*``, every direction flipped."""
    rename = {"s_axil_": "m_axil_", "s_axis_": "m_axis_", "m_axis_": "s_axis_"}
    return {rename[name[:7]] + name[7:]: member.flip()
            for name, member in axi_top_members(addr_width, stream_bits,
                                                own_domain=False).items()}


class UARTBridge(wiring.Component):
    """Command processor between a byte stream (a UART) and AXI4-Lite/Stream ports.

    Parameters
    ----------
    addr_width : int
        AXI4-Lite address width of the accelerator (1..16).
    stream_bits : int
        AXI4-Stream TDATA width, a multiple of 8 (8..512).
    fifo_depth : int
        Input FIFO depth in beats (2..65535): the credit a host may send at once.
    timeout : int
        Clock cycles without a byte after which an incomplete command is dropped.

    Members
    -------
    rx : In(stream.Signature(8))
        Bytes from the host (``rx.ready`` is always 1: a UART cannot wait).
    tx : Out(stream.Signature(8))
        Bytes to the host.
    rx_error : In(1)
        Pulse on a UART framing error (reported by STATUS).
    m_axil_* : AXI4-Lite master (connect to the accelerator's ``s_axil_*``).
    m_axis_tdata, m_axis_tlast, m_axis_tvalid, m_axis_tready : to the accelerator's input stream.
    s_axis_tdata, s_axis_tlast, s_axis_tvalid, s_axis_tready : from its output stream.
    """

    def __init__(self, addr_width: int, stream_bits: int, *, fifo_depth: int = 64,
                 timeout: int = 1_000_000):
        for name, value, lo, hi in (("addr_width", addr_width, 1, 16),
                                    ("fifo_depth", fifo_depth, 2, 65535),
                                    ("timeout", timeout, 16, 1 << 32)):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"UART bridge {name} must be an integer in {lo}..{hi}, "
                                 f"not {value!r}")
        if (isinstance(stream_bits, bool) or not isinstance(stream_bits, int)
                or not 8 <= stream_bits <= 512 or stream_bits % 8):
            raise ValueError(f"UART bridge stream_bits must be a multiple of 8 in 8..512, "
                             f"not {stream_bits!r}")
        self._sb, self._depth, self._timeout = stream_bits, fifo_depth, timeout
        super().__init__({
            "rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)), "rx_error": In(1),
            **axi_master_members(addr_width, stream_bits),
        })

    @property
    def stream_bytes(self) -> int:
        return self._sb // 8

    @property
    def fifo_depth(self) -> int:
        return self._depth

    def elaborate(self, platform):
        m = Module()
        sb, nbytes, depth = self._sb, self._sb // 8, self._depth

        m.submodules.fifo = fifo = SyncFIFOBuffered(width=sb + 1, depth=depth)
        m.d.comb += [
            self.m_axis_tdata.eq(fifo.r_data[:sb]), self.m_axis_tlast.eq(fifo.r_data[sb]),
            self.m_axis_tvalid.eq(fifo.r_rdy), fifo.r_en.eq(self.m_axis_tready),
        ]
        free = Signal(16)
        m.d.comb += free.eq(depth - fifo.level)

        m.d.comb += self.rx.ready.eq(1)
        byte = self.rx.payload
        got = self.rx.valid

        # Response buffer: bytes go out low byte first.
        tx_bytes = max(7, 1 + nbytes)
        tx_buf = Signal(8 * tx_bytes)
        tx_left = Signal(range(tx_bytes + 1))
        m.d.comb += [self.tx.payload.eq(tx_buf[:8]), self.tx.valid.eq(tx_left != 0)]
        with m.If(self.tx.valid & self.tx.ready):
            m.d.sync += [tx_buf.eq(tx_buf >> 8), tx_left.eq(tx_left - 1)]
        tx_idle = Signal()
        m.d.comb += tx_idle.eq(tx_left == 0)

        def respond(*fields):
            # fields: (value, width in bytes) pairs, each zero-extended to its width.
            parts, total = [], 0
            for value, width in fields:
                value = Value.cast(value)
                parts.append(Cat(value, Const(0, 8 * width - len(value)))
                             if len(value) < 8 * width else value[:8 * width])
                total += width
            return [tx_buf.eq(Cat(*parts)), tx_left.eq(total)]

        args = Signal(48)            # argument bytes, shifted in from the top
        nargs = Signal(range(8))
        beat = Signal(sb)
        beat_bytes = Signal(range(nbytes + 1))
        beats_left = Signal(9)
        send_last = Signal()
        overflow = Signal()
        frame_err = Signal()
        with m.If(self.rx_error):
            m.d.sync += frame_err.eq(1)

        # Idle timeout: an incomplete command is dropped.
        idle = Signal(range(self._timeout + 1))
        in_cmd = Signal()
        with m.If(got | ~in_cmd):
            m.d.sync += idle.eq(0)
        with m.Elif(idle != self._timeout):
            m.d.sync += idle.eq(idle + 1)
        timed_out = Signal()
        m.d.comb += timed_out.eq(in_cmd & (idle == self._timeout))

        recv_left = Signal(9)
        recv_beat = Signal(sb)
        recv_last = Signal()

        op = Signal(8)
        m.d.comb += [self.m_axil_awprot.eq(0), self.m_axil_arprot.eq(0),
                     self.m_axil_wstrb.eq(0xF)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(got):
                    m.d.sync += [op.eq(byte), nargs.eq(0)]
                    with m.Switch(byte):
                        with m.Case(OP["INFO"]):
                            m.next = "INFO"
                        with m.Case(OP["WRITE"], OP["READ"], OP["SEND"], OP["RECV"]):
                            m.next = "ARGS"
                        with m.Case(OP["STATUS"]):
                            m.next = "STATUS"
                        with m.Default():
                            m.next = "UNKNOWN"

            with m.State("ARGS"):
                m.d.comb += in_cmd.eq(1)
                need = Signal(range(8))
                with m.Switch(op):
                    with m.Case(OP["WRITE"]):
                        m.d.comb += need.eq(6)
                    with m.Case(OP["READ"], OP["SEND"]):
                        m.d.comb += need.eq(2)
                    with m.Default():
                        m.d.comb += need.eq(1)
                with m.If(timed_out):
                    m.next = "IDLE"
                with m.Elif(got):
                    m.d.sync += [args.eq(Cat(args[8:], byte)), nargs.eq(nargs + 1)]
                    with m.If(nargs + 1 == need):
                        with m.Switch(op):
                            with m.Case(OP["WRITE"]):
                                m.next = "WRITE"
                            with m.Case(OP["READ"]):
                                m.next = "READ"
                            with m.Case(OP["SEND"]):
                                m.d.sync += [send_last.eq(args[40]), beats_left.eq(byte + 1),
                                             beat_bytes.eq(0)]
                                m.next = "SEND"
                            with m.Default():
                                m.d.sync += recv_left.eq(byte + 1)
                                m.next = "RECV"

            with m.State("INFO"):
                with m.If(tx_idle):
                    m.d.sync += respond((OP["INFO"], 1), (VERSION, 1), (nbytes, 1), (depth, 2))
                    m.next = "IDLE"

            with m.State("STATUS"):
                with m.If(tx_idle):
                    flags = Cat(overflow, self.s_axis_tvalid, frame_err)
                    m.d.sync += respond((OP["STATUS"], 1), (free, 2), (flags, 1))
                    m.d.sync += [overflow.eq(0), frame_err.eq(0)]
                    m.next = "IDLE"

            with m.State("UNKNOWN"):
                with m.If(tx_idle):
                    m.d.sync += respond((RESP_UNKNOWN, 1))
                    m.next = "IDLE"

            # args holds (oldest byte lowest after 6 shifts): addr lo, addr hi, d0..d3.
            with m.State("WRITE"):
                aw_done, w_done = Signal(), Signal()
                m.d.comb += [
                    self.m_axil_awaddr.eq(args[:16]), self.m_axil_wdata.eq(args[16:48]),
                    self.m_axil_awvalid.eq(~aw_done), self.m_axil_wvalid.eq(~w_done),
                    self.m_axil_bready.eq(aw_done & w_done & tx_idle),
                ]
                with m.If(self.m_axil_awvalid & self.m_axil_awready):
                    m.d.sync += aw_done.eq(1)
                with m.If(self.m_axil_wvalid & self.m_axil_wready):
                    m.d.sync += w_done.eq(1)
                with m.If(self.m_axil_bready & self.m_axil_bvalid):
                    m.d.sync += respond((OP["WRITE"], 1), (self.m_axil_bresp, 1))
                    m.d.sync += [aw_done.eq(0), w_done.eq(0)]
                    m.next = "IDLE"

            with m.State("READ"):
                ar_done = Signal()
                m.d.comb += [
                    self.m_axil_araddr.eq(args[32:48]),
                    self.m_axil_arvalid.eq(~ar_done),
                    self.m_axil_rready.eq(ar_done & tx_idle),
                ]
                with m.If(self.m_axil_arvalid & self.m_axil_arready):
                    m.d.sync += ar_done.eq(1)
                with m.If(self.m_axil_rready & self.m_axil_rvalid):
                    m.d.sync += respond((OP["READ"], 1), (self.m_axil_rresp, 1),
                                        (self.m_axil_rdata, 4))
                    m.d.sync += ar_done.eq(0)
                    m.next = "IDLE"

            with m.State("SEND"):
                m.d.comb += in_cmd.eq(1)
                with m.If(timed_out):
                    m.next = "IDLE"
                with m.Elif(got):
                    m.d.sync += [beat.eq(Cat(beat[8:], byte)), beat_bytes.eq(beat_bytes + 1)]
                    with m.If(beat_bytes == nbytes - 1):
                        m.d.sync += beat_bytes.eq(0)
                        last = send_last & (beats_left == 1)
                        m.d.comb += [fifo.w_data.eq(Cat(Cat(beat[8:], byte), last)),
                                     fifo.w_en.eq(1)]
                        with m.If(~fifo.w_rdy):
                            m.d.sync += overflow.eq(1)
                        m.d.sync += beats_left.eq(beats_left - 1)
                        with m.If(beats_left == 1):
                            m.next = "SEND_ACK"

            with m.State("SEND_ACK"):
                # One cycle after the last write, so that `free` counts it.
                with m.If(tx_idle):
                    m.d.sync += respond((OP["SEND"], 1), (free, 2))
                    m.next = "IDLE"

            with m.State("RECV"):
                with m.If(tx_idle):
                    with m.If(self.s_axis_tvalid & (recv_left != 0) & ~recv_last):
                        m.d.comb += self.s_axis_tready.eq(1)
                        m.d.sync += [*respond((BEAT_TAG | self.s_axis_tlast, 1),
                                              (self.s_axis_tdata, nbytes)),
                                     recv_left.eq(recv_left - 1),
                                     recv_last.eq(self.s_axis_tlast)]
                    with m.Else():
                        m.d.sync += [*respond((OP["RECV"], 1)), recv_last.eq(0)]
                        m.next = "IDLE"
        return m


@dataclass(frozen=True)
class BridgeInfo:
    version: int
    stream_bytes: int
    fifo_depth: int


class BridgeProtocol:
    """Host side of the bridge protocol: request bytes and response parsing.

    Transport-agnostic: give it a ``write(bytes)`` and a ``read(n) -> bytes``
    (e.g. a pyserial port's methods, or a simulator testbench's).

    Parameters
    ----------
    write : callable
    read : callable
        Must return exactly ``n`` bytes or raise (a timeout).
    stream_bytes : int, optional
        Stream beat size; read from INFO when not given.
    """

    def __init__(self, write, read, stream_bytes: int | None = None):
        self._write, self._read = write, read
        self._nbytes = stream_bytes

    def _expect(self, op: int) -> None:
        got = self._read(1)[0]
        if got != op:
            raise IOError(f"UART bridge answered opcode 0x{got:02x}, expected 0x{op:02x}; "
                          f"the link is out of sync (pause, then call info())")

    def info(self) -> BridgeInfo:
        self._write(bytes([OP["INFO"]]))
        self._expect(OP["INFO"])
        version, nbytes, depth = struct.unpack("<BBH", self._read(4))
        self._nbytes = nbytes
        return BridgeInfo(version, nbytes, depth)

    def csr_write(self, addr: int, value: int) -> int:
        """Write a CSR; returns the AXI response (0 OKAY, 2 SLVERR)."""
        self._write(struct.pack("<BHI", OP["WRITE"], addr, value & 0xFFFFFFFF))
        self._expect(OP["WRITE"])
        return self._read(1)[0]

    def csr_read(self, addr: int) -> tuple[int, int]:
        """Read a CSR; returns ``(value, response)``."""
        self._write(struct.pack("<BH", OP["READ"], addr))
        self._expect(OP["READ"])
        resp, value = struct.unpack("<BI", self._read(5))
        return value, resp

    def send(self, beats: bytes, last: bool = True) -> int:
        """Queue whole beats (at most 256, within the credit); returns the free space."""
        n = self._beat_bytes()
        if len(beats) % n or not 0 < len(beats) <= 256 * n:
            raise ValueError(f"SEND data must be 1..256 whole beats of {n} bytes, "
                             f"not {len(beats)} bytes")
        self._write(bytes([OP["SEND"], int(last), len(beats) // n - 1]) + bytes(beats))
        self._expect(OP["SEND"])
        return struct.unpack("<H", self._read(2))[0]

    def recv(self, max_beats: int = 256) -> tuple[bytes, bool]:
        """Take the output beats that are waiting (up to ``max_beats``, stopping at TLAST).

        Returns ``(data, saw_last)``.
        """
        if not 1 <= max_beats <= 256:
            raise ValueError(f"RECV beat count must be in 1..256, not {max_beats!r}")
        n = self._beat_bytes()
        self._write(bytes([OP["RECV"], max_beats - 1]))
        data, last = bytearray(), False
        while True:
            tag = self._read(1)[0]
            if tag == OP["RECV"]:
                return bytes(data), last
            if tag & 0xFE != BEAT_TAG:
                raise IOError(f"UART bridge sent 0x{tag:02x} inside a RECV response")
            data += self._read(n)
            last = bool(tag & 1)

    def status(self) -> tuple[int, dict]:
        """Returns ``(free_beats, {"overflow", "output_waiting", "framing_error"})``."""
        self._write(bytes([OP["STATUS"]]))
        self._expect(OP["STATUS"])
        free, flags = struct.unpack("<HB", self._read(3))
        return free, {"overflow": bool(flags & 1), "output_waiting": bool(flags & 2),
                      "framing_error": bool(flags & 4)}

    def _beat_bytes(self) -> int:
        if self._nbytes is None:
            self.info()
        return self._nbytes
