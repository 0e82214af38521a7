"""A small package written as ts_tcpip users write theirs: a mock dome
controller, a commander that talks to it, and unittest-style tests.

It moved to anytcpip by changing ``from lsst.ts import tcpip`` to
``import anytcpip as tcpip``, plus the lifecycle lines that
docs/migrating.rst names (each marked ``# anytcpip`` in the code).
"""
