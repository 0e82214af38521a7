"""Fault-injection, bad-input and soak tests (RELIABILITY.md rows R1-R32)."""
