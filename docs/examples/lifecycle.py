"""Lifecycle: the owned form, closing from another task, user exceptions."""

from __future__ import annotations

import logging

import anyio

import anytcpip

log = logging.getLogger("lifecycle")


class Controller:
    """Connects in one command handler and disconnects in another (as a CSC
    does), so the client outlives any one ``async with`` block."""

    def __init__(self, task_group: anyio.abc.TaskGroup) -> None:
        self.task_group = task_group
        self.client: anytcpip.Client | None = None

    async def do_enable(self, host: str, port: int) -> None:
        client = anytcpip.Client(host=host, port=port, log=log)
        # Returns once connected (or raises OSError with nothing left running);
        # the client then runs in the caller's task group until closed.
        await self.task_group.start(client.run)
        self.client = client

    async def do_disable(self) -> None:
        if self.client is not None:
            await self.client.close()  # from any task; run() then returns


async def main() -> None:
    async with anytcpip.OneClientServer(
        host=anytcpip.LOCALHOST_IPV4, port=0, log=log
    ) as server:
        async with anyio.create_task_group() as tg:
            controller = Controller(tg)
            await controller.do_enable(anytcpip.LOCALHOST_IPV4, server.port)
            assert controller.client is not None
            await controller.client.write_str("hello")
            assert await server.read_str() == "hello"
            await controller.do_disable()
        # The task group has nothing left to wait for.

        # An exception raised in the body of ``async with`` comes out as it
        # is, not wrapped in an ExceptionGroup, after the client is closed.
        try:
            async with anytcpip.Client(
                host=anytcpip.LOCALHOST_IPV4, port=server.port, log=log
            ) as client:
                raise KeyError("raised by the user's code")
        except KeyError as exc:
            assert exc.args == ("raised by the user's code",)
        assert client.done_task.done()


if __name__ == "__main__":
    anyio.run(main)
