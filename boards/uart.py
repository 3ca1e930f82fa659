"""An 8N1 UART: receiver and transmitter with byte streams.

Both take the bit period in clock cycles (``divisor = clk_hz // baud``, at least 4).
The receiver synchronizes its pin with two flip-flops, finds the start bit's
falling edge, samples each bit in its middle, and drops a frame whose stop bit
is low (a framing error, counted in ``errors``). It has no ready: a byte lives for
one cycle on ``o``; the consumer must take it then (a bridge taking one byte per
bit period has cycles to spare). After a framing error the receiver waits for the
line to return high before it looks for the next start bit.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

__all__ = ["UARTRx", "UARTTx", "uart_divisor"]


def uart_divisor(clk_hz: float, baud: int) -> int:
    """Clock cycles per bit for ``baud`` at ``clk_hz``, checked for accuracy.

    Raises
    ------
    ValueError
        If the divisor is below 4 or the baud rate error exceeds 2 %.
    """
    if not isinstance(baud, int) or baud <= 0:
        raise ValueError(f"UART baud rate must be a positive integer, not {baud!r}")
    divisor = round(clk_hz / baud)
    if divisor < 4:
        raise ValueError(f"UART baud rate must be at most clock/4 ({clk_hz / 4:.0f}), "
                         f"not {baud!r}")
    error = abs(clk_hz / divisor - baud) / baud
    if error > 0.02:
        raise ValueError(f"UART baud rate {baud} is {100 * error:.1f}% off at a "
                         f"{clk_hz / 1e6:g} MHz clock; the limit is 2%")
    return divisor


def _check_divisor(divisor):
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 4:
        raise ValueError(f"UART divisor must be an integer of at least 4, not {divisor!r}")


class UARTRx(wiring.Component):
    """Parameters
    ----------
    divisor : int
        Clock cycles per bit.

    Members
    -------
    rx : In(1)
        The pin (idle high).
    o : Out(stream.Signature(8))
        Received bytes; ``o.ready`` is ignored (see the module docstring).
    errors : Out(8)
        Framing errors seen (wraps).
    """

    def __init__(self, divisor: int):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8)),
                          "errors": Out(8)})

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(d + d // 2 + 1))
        bits = Signal(4)
        shreg = Signal(8)
        m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    # First sample point: the middle of bit 0, 1.5 periods away.
                    m.d.sync += [timer.eq(d + d // 2 - 2), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [timer.eq(d - 1), shreg.eq(Cat(shreg[1:], rx)),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    with m.If(rx):
                        m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                        # Back to idle mid-stop-bit so the next start edge is not missed.
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.errors.eq(self.errors + 1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                # After a framing error (or a break), wait for the idle level, so the
                # rest of a low stop bit does not look like a start bit.
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """Parameters
    ----------
    divisor : int
        Clock cycles per bit.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send.
    tx : Out(1)
        The pin (idle high).
    """

    def __init__(self, divisor: int):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        timer = Signal(range(d))
        shreg = Signal(10, init=0x3FF)
        left = Signal(range(11))
        m.d.comb += [self.tx.eq(shreg[0]), self.i.ready.eq(left == 0)]
        with m.If(left == 0):
            with m.If(self.i.valid):
                m.d.sync += [shreg.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))),
                             left.eq(10), timer.eq(d - 1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [shreg.eq(Cat(shreg[1:], Const(1, 1))), left.eq(left - 1),
                         timer.eq(d - 1)]
        return m
