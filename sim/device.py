"""The device interface every backend implements, and the program executor.

A *program* is a list of plain tuples (see :mod:`accelgen.host.plan`):

``("write", offset, value)``
    AXI4-Lite write of a 32-bit value; SLVERR raises :class:`BusError`.
``("read", offset)``
    AXI4-Lite read; its value is appended to the results.
``("send", data)``
    One AXI4-Stream frame of ``bytes`` (a whole number of beats, TLAST on the last
    beat). Queued: it is fed to ``s_axis`` while later operations run the clock.
``("recv", nbytes)``
    Run until one ``m_axis`` frame of exactly ``nbytes`` arrived; its bytes are
    appended to the results.
``("wait", offset, mask, expected)``
    Poll the CSR at ``offset`` until ``value & mask == expected``.

Backends run the clock only inside operations; all of them must give identical
cycle counts for the same program (the hardware counters are what is compared).
"""

import abc

__all__ = ["Device", "DeviceError", "BusError", "DeviceTimeout", "StreamError", "OPS"]

OPS = ("write", "read", "send", "recv", "wait")


class DeviceError(RuntimeError):
    """The device did something the program did not expect."""


class BusError(DeviceError):
    """An AXI4-Lite access answered SLVERR/DECERR."""


class DeviceTimeout(DeviceError):
    """An operation did not complete within its cycle budget."""


class StreamError(DeviceError):
    """A result frame had the wrong length (TLAST early or late)."""


class Device(abc.ABC):
    """A running accelerator instance behind its AXI ports.

    Subclasses implement the five operations; :meth:`execute` runs a program.
    ``timeout_cycles`` bounds every clock-running operation.
    """

    #: default cycle budget of one operation
    DEFAULT_TIMEOUT = 50_000_000

    @abc.abstractmethod
    def write(self, offset: int, value: int, *, timeout_cycles: int = DEFAULT_TIMEOUT) -> None:
        ...

    @abc.abstractmethod
    def read(self, offset: int, *, timeout_cycles: int = DEFAULT_TIMEOUT) -> int:
        ...

    @abc.abstractmethod
    def send(self, data: bytes) -> None:
        ...

    @abc.abstractmethod
    def recv(self, nbytes: int, *, timeout_cycles: int = DEFAULT_TIMEOUT) -> bytes:
        ...

    @abc.abstractmethod
    def wait(self, offset: int, mask: int, expected: int, *,
             timeout_cycles: int = DEFAULT_TIMEOUT) -> int:
        """Poll until ``read(offset) & mask == expected``; returns the last value read."""

    @property
    @abc.abstractmethod
    def cycles(self) -> int:
        """Clock cycles simulated since the device was created."""

    def reset(self) -> None:
        """Assert the bus reset (``aresetn`` low) for a few cycles."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def execute(self, ops, *, timeout_cycles: int = DEFAULT_TIMEOUT) -> list:
        """Run a program; return the results of its reads and receives, in order."""
        results = []
        for op in ops:
            kind = op[0]
            if kind == "write":
                self.write(op[1], op[2], timeout_cycles=timeout_cycles)
            elif kind == "read":
                results.append(self.read(op[1], timeout_cycles=timeout_cycles))
            elif kind == "send":
                self.send(bytes(op[1]))
            elif kind == "recv":
                results.append(self.recv(op[1], timeout_cycles=timeout_cycles))
            elif kind == "wait":
                self.wait(op[1], op[2], op[3], timeout_cycles=timeout_cycles)
            else:
                raise ValueError(f"Program operation must be one of {', '.join(OPS)}, not {kind!r}")
        return results
