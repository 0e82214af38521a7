"""Fault-injection, bad-input and soak tests (docs/reliability.rst, rows R1-R32)."""
