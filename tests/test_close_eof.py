"""Closing sends the end-of-stream at once: the peer does not wait for this
end's disconnect callback or other tasks, and nothing written before the close
is lost (on every backend, plain TCP)."""

from __future__ import annotations

import logging

import anyio
import anyio.abc
import pytest

import anytcpip
from helpers import NET_TIMEOUT, deadline, peer_closed, receive_exactly

pytestmark = pytest.mark.anyio


@deadline(NET_TIMEOUT * 3)
@pytest.mark.parametrize("close", ["close_client", "close"])
async def test_peer_sees_the_close_while_the_disconnect_callback_still_runs(
    log: logging.Logger, close: str
) -> None:
    # The disconnect callback waits until the peer has seen the close: that
    # only works if the end-of-stream went out before the callback ran out.
    peer_saw_close = anyio.Event()
    callback_saw_it = anyio.Event()

    async def callback(server: anytcpip.OneClientServer) -> None:
        if not server.connected and server.should_be_connected is False:
            with anyio.fail_after(NET_TIMEOUT):
                await peer_saw_close.wait()
            callback_saw_it.set()

    async with anytcpip.OneClientServer(
        "127.0.0.1", 0, log, connect_callback=callback, name="eof"
    ) as server:
        peer = await anyio.connect_tcp("127.0.0.1", server.port)
        async with peer:
            await server.connected_task
            await server.write(b"last words\n")
            async with anyio.create_task_group() as tg:
                tg.start_soon(getattr(server, close))
                with anyio.fail_after(NET_TIMEOUT):
                    # What was written before the close comes first.
                    assert await receive_exactly(peer, 11) == b"last words\n"
                    assert await peer_closed(peer)
                peer_saw_close.set()
                await peer.aclose()  # our end too: the close need not linger
            with anyio.fail_after(NET_TIMEOUT):
                await callback_saw_it.wait()


@deadline(NET_TIMEOUT * 3)
async def test_client_close_reaches_the_server_while_its_callback_runs(
    log: logging.Logger,
) -> None:
    peer_saw_close = anyio.Event()
    callback_saw_it = anyio.Event()

    async def callback(client: anytcpip.Client) -> None:
        if not client.connected and not client.should_be_connected:
            with anyio.fail_after(NET_TIMEOUT):
                await peer_saw_close.wait()
            callback_saw_it.set()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        client = anytcpip.Client("127.0.0.1", port, log, connect_callback=callback, name="c")
        accepted: list[anyio.abc.SocketStream] = []
        accepted_one = anyio.Event()

        async def accept_one(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            task_status.started()
            accepted.append(await listener.listeners[0].accept())  # type: ignore[attr-defined]
            accepted_one.set()

        async with anyio.create_task_group() as tg:
            await tg.start(accept_one)
            async with client:
                with anyio.fail_after(NET_TIMEOUT):
                    await accepted_one.wait()
                peer = accepted[0]
                async with peer:
                    await client.write_str("bye")
                    async with anyio.create_task_group() as closing:
                        closing.start_soon(client.close)
                        with anyio.fail_after(NET_TIMEOUT):
                            assert await receive_exactly(peer, 5) == b"bye\r\n"
                            assert await peer_closed(peer)
                        peer_saw_close.set()
                        await peer.aclose()
                    with anyio.fail_after(NET_TIMEOUT):
                        await callback_saw_it.wait()
