"""A TCP peer in a subprocess, with plain blocking sockets, that can be frozen
(SIGSTOP) or killed (SIGKILL) while connected.

The subprocess runs this file as a script. It either connects to a port or
listens on 127.0.0.1:0, prints ``ready <port>`` once connected, and then:

* sends ``heartbeat\\r\\n`` every ``--heartbeat`` seconds (0: never);
* reads and discards everything (``--read drain``), echoes it
  (``--read echo``) or never reads (``--read none``);
* first sends ``--send`` bytes of pattern data.

:class:`PeerProcess` always cleans up: SIGKILL, then SIGCONT, then wait.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from types import TracebackType

import anyio

__all__ = ("PeerProcess",)

_THIS = os.path.abspath(__file__)


class PeerProcess:
    """Start a peer subprocess; use as ``async with PeerProcess(...) as peer``.

    Parameters
    ----------
    connect_port : int or None
        Connect to 127.0.0.1:connect_port; if None, listen on 127.0.0.1:0 and
        serve the first connection (``peer.port`` is the port).
    heartbeat : float
        Seconds between heartbeats (0: none).
    read : str
        "drain", "echo" or "none".
    send : int
        Bytes to send once connected.
    rcvbuf : int
        SO_RCVBUF to set (0: leave the default).
    """

    def __init__(
        self,
        connect_port: int | None = None,
        *,
        heartbeat: float = 0.0,
        read: str = "drain",
        send: int = 0,
        rcvbuf: int = 0,
    ) -> None:
        self.args = [
            sys.executable,
            _THIS,
            "--port",
            str(connect_port if connect_port is not None else 0),
            "--mode",
            "connect" if connect_port is not None else "listen",
            "--heartbeat",
            str(heartbeat),
            "--read",
            read,
            "--send",
            str(send),
            "--rcvbuf",
            str(rcvbuf),
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    async def __aenter__(self) -> PeerProcess:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            line = await self.readline()
            if not line.startswith(b"listening ") and not line.startswith(b"ready "):
                raise RuntimeError(f"peer failed to start: {line!r}")
            self.port = int(line.split()[1])
        except BaseException:
            await self.cleanup()
            raise
        return self

    async def readline(self) -> bytes:
        """The next status line from the peer (``ready <port>`` and so on)."""
        assert self.proc is not None
        assert self.proc.stdout is not None
        with anyio.fail_after(10):
            return await anyio.to_thread.run_sync(self.proc.stdout.readline, abandon_on_cancel=True)

    async def wait_ready(self) -> None:
        """In listen mode: wait until the peer accepted a connection."""
        line = await self.readline()
        if not line.startswith(b"ready"):
            raise RuntimeError(f"peer failed: {line!r}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def freeze(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)

    async def wait_exit(self) -> int:
        assert self.proc is not None
        with anyio.fail_after(10):
            return await anyio.to_thread.run_sync(self.proc.wait, abandon_on_cancel=True)

    async def cleanup(self) -> None:
        proc = self.proc
        if proc is None:
            return
        with anyio.CancelScope(shield=True):
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                    os.kill(proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            await anyio.to_thread.run_sync(proc.wait)
            if proc.stdout is not None:
                proc.stdout.close()
        self.proc = None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.cleanup()


# ---------------------------------------------------------------- subprocess


def _main() -> None:  # pragma: no cover (runs in the subprocess)
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("connect", "listen"), required=True)
    parser.add_argument("--heartbeat", type=float, default=0.0)
    parser.add_argument("--read", choices=("drain", "echo", "none"), default="drain")
    parser.add_argument("--send", type=int, default=0)
    parser.add_argument("--rcvbuf", type=int, default=0)
    args = parser.parse_args()

    def say(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    if args.mode == "connect":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if args.rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
        sock.connect(("127.0.0.1", args.port))
        say(f"ready {sock.getsockname()[1]}")
    else:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        say(f"listening {listener.getsockname()[1]}")
        sock, _ = listener.accept()
        if args.rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
        say("ready")
    lock = threading.Lock()
    if args.send:
        with lock:
            sock.sendall(bytes(i % 251 for i in range(args.send)))

    def heartbeats() -> None:
        while True:
            time.sleep(args.heartbeat)
            try:
                with lock:
                    sock.sendall(b"heartbeat\r\n")
            except OSError:
                return

    if args.heartbeat > 0:
        threading.Thread(target=heartbeats, daemon=True).start()
    if args.read == "none":
        while True:
            time.sleep(3600)
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            break
        if not data:
            break
        if args.read == "echo":
            with lock:
                sock.sendall(data)
    say("eof")
    sock.close()


if __name__ == "__main__":  # pragma: no cover
    _main()
