"""Simulation backends (Amaranth simulator, Verilator native harness) and cocotb testbenches."""
