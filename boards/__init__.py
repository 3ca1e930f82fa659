"""FPGA board targets and synthesis / place-and-route flows."""
