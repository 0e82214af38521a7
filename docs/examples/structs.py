"""Binary structs: ctypes.Structure with read_into and write_from."""

from __future__ import annotations

import ctypes
import logging

import anyio

import anytcpip

log = logging.getLogger("structs")


class Telemetry(ctypes.Structure):
    """A fixed-size binary message, laid out as the controller sends it."""

    _fields_ = [
        ("timestamp", ctypes.c_double),
        ("positions", ctypes.c_int64 * 3),
    ]


async def main() -> None:
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log
    ) as server:
        async with anytcpip.Client(
            host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log
        ) as client:
            await server.connected_task

            # Writing: one or more structures, sent as one message.
            sent = Telemetry(timestamp=1.2e3, positions=(-1, 2, 3))
            await server.write_from(sent, sent)

            # Reading: fills the structure in place.
            received = Telemetry()
            for _ in range(2):
                await client.read_into(received)
                assert received.timestamp == 1.2e3
                assert list(received.positions) == [-1, 2, 3]

            # If the peer closes part-way, the read raises IncompleteReadError
            # (also an asyncio.IncompleteReadError) with the bytes that came.
            await server.write(bytes(sent)[:5])
            await server.close_client()
            try:
                await client.read_into(received)
            except anytcpip.IncompleteReadError as exc:
                assert len(exc.partial) == 5
                assert exc.expected == ctypes.sizeof(Telemetry)


if __name__ == "__main__":
    anyio.run(main)
