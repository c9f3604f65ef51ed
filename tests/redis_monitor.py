"""The scripts a Redis runs while a test acts, as its MONITOR shows them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis


@contextmanager
def evals_seen(url: str) -> Iterator[list[tuple[str, str]]]:
    """The EVAL and EVALSHA commands Redis runs inside the block: (the sending connection, the command)."""
    monitor = redis.Redis.from_url(url)
    seen: list[tuple[str, str]] = []
    listening = threading.Event()

    def watch() -> None:
        with monitor.monitor() as commands:
            listening.set()
            for command in commands.listen():
                text = command["command"]
                if text.startswith("EVAL"):
                    seen.append((f"{command.get('client_address')}{command.get('client_port')}", text))
                if "stop-watching" in text:
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert listening.wait(10)
    try:
        yield seen
    finally:
        monitor.echo("stop-watching")
        watcher.join(timeout=10)
        monitor.close()
