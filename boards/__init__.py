"""FPGA board targets and synthesis / place-and-route flows.

Modules
-------
parts
    Lattice ordering codes (``LFE5U-85F-6BG381C``, ``iCE40UP5K-SG48``) to parts.
harness
    Out-of-context harness: the accelerator with registered I/O behind four pins.
flow
    Out-of-context Yosys + nextpnr runs with utilization and post-route Fmax.
build
    Board builds: bitstreams for amaranth-boards platforms.
targets
    Board names to amaranth-boards platforms.
top
    Board top: PLL, UART bridge, accelerator.
uart, bridge
    8N1 UART and the UART-to-AXI bridge with its documented protocol.
loopback
    Bring-up stand-in for the accelerator (scratch registers, stream loopback).
asic
    Technology-independent Yosys synthesis: cell counts and a transistor estimate.
report, sta
    nextpnr and Yosys report parsing; the worst register groups from the routed SDF.
cache, runner, table
    The result cache (and ``cached_fmax``), tool runs, the benchmark table.
"""
