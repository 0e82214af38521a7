"""Concurrent writers (with heartbeats) and concurrent readers
(docs/reliability.rst R19, R20)."""

from __future__ import annotations

import ctypes
import json
import logging

import anyio
import pytest

from helpers import deadline

from .harness import TEST_TIMEOUT, open_pair


class _Tag(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("text", ctypes.c_char * 11)]


class _Body(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("text", ctypes.c_char * 20)]


class _End(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("text", ctypes.c_char * 2)]


WRITERS = 10
PER_WRITER = 200


@deadline(TEST_TIMEOUT)
async def test_writers_atomic(log: logging.Logger) -> None:
    """R19: 10 tasks each write 200 frames, cycling through write_json,
    write_from(3 structs) and writelines, while the client's heartbeat task
    writes every 10 ms. Every line the server reads is either a heartbeat or
    an intact frame, each task's frames arrive complete and in order, and no
    BusyResourceError (or any error) reaches a writer."""
    async with open_pair(
        log,
        client_kwargs={"run_heartbeat_send_task": True, "heartbeat_send_sleep": 0.01},
    ) as pair:
        client, server = pair.client, pair.server

        async def writer(task: int) -> None:
            for seq in range(PER_WRITER):
                kind = seq % 3
                if kind == 0:
                    await client.write_json({"t": task, "s": seq, "pad": "j" * 30})
                elif kind == 1:
                    await client.write_from(
                        _Tag(b"S:%02d:%05d:" % (task, seq)),
                        _Body(b"s" * 20),
                        _End(b"\r\n"),
                    )
                else:
                    await client.writelines([b"L:%02d:%05d:" % (task, seq), b"l" * 25, b"\r\n"])
                if seq % 17 == 0:
                    await anyio.sleep(0)

        next_seq = [0] * WRITERS
        heartbeats = 0
        async with anyio.create_task_group() as tg:
            for task in range(WRITERS):
                tg.start_soon(writer, task)
            while sum(next_seq) < WRITERS * PER_WRITER:
                line = await server.read_str()
                if line == "heartbeat":
                    heartbeats += 1
                    continue
                if line.startswith("{"):
                    doc = json.loads(line)
                    task, seq = doc["t"], doc["s"]
                    assert doc["pad"] == "j" * 30, line
                elif line.startswith("S:"):
                    _, t, s, body = line.split(":", 3)
                    task, seq = int(t), int(s)
                    assert body == "s" * 20, line
                else:
                    assert line.startswith("L:"), f"torn frame {line!r}"
                    _, t, s, body = line.split(":", 3)
                    task, seq = int(t), int(s)
                    assert body == "l" * 25, line
                assert seq == next_seq[task], (task, seq, next_seq[task])
                next_seq[task] += 1
        assert heartbeats >= 1
        assert client.connected
        assert pair.client_cb.states == [True]


@pytest.mark.parametrize("monitor", [0.1, 0.0])
@deadline(TEST_TIMEOUT)
async def test_two_readers(log: logging.Logger, monitor: float) -> None:
    """R20: two tasks call read_str on the same connection at once.
    They are served one at a time with whole messages: no error, no message
    split or lost, each reader sees its messages in order; the connection
    monitor does not count as a competing reader."""
    n = 400
    async with open_pair(log, client_kwargs={"monitor_connection_interval": monitor}) as pair:
        got: dict[str, list[int]] = {"a": [], "b": []}
        done = anyio.Event()

        async def reader(name: str) -> None:
            while not done.is_set():
                with anyio.move_on_after(0.5):
                    line = await pair.client.read_str()
                    value = int(line.removeprefix("message "))
                    got[name].append(value)
                    if len(got["a"]) + len(got["b"]) == n:
                        done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader, "a")
            tg.start_soon(reader, "b")
            for i in range(n):
                await pair.server.write_str(f"message {i}")
                if i % 10 == 0:
                    await anyio.sleep(0.001)
        assert sorted(got["a"] + got["b"]) == list(range(n))
        assert got["a"] == sorted(got["a"])
        assert got["b"] == sorted(got["b"])
        assert pair.client.connected
        assert pair.client_cb.states == [True]
