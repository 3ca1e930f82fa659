"""cocotb testbenches of the generated accelerators (run through cocotb_tools.runner)."""
