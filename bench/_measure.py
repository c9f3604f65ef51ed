"""The measurements. Raw Celery and task-client take turns (A B B A ...) so machine noise cancels."""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import redis
from celery import Celery, group

from task_client import TaskClient

from ._report import Row

PUBLISH_QUEUE = "bench-publish"  # consumed by no worker: publish cost alone
BATCH_TIMEOUT = 900.0


def raw_app(url: str, *, backend: bool) -> Celery:
    """Celery as a user would configure it by hand: JSON, routes by name, Redis result backend."""
    app = Celery("raw", broker=url, backend=url if backend else None, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_routes={"math.*": {"queue": "math"}},
    )
    return app


class Bench:
    def __init__(self, url: str, profile_dir: Path | None = None) -> None:
        self.url = url
        # cProfile of the calling thread per side and row; the result thread is not profiled.
        self.profile_dir = profile_dir
        self.profiles: dict[str, cProfile.Profile] = {}
        self.raw = raw_app(url, backend=True)
        self.raw_publisher = raw_app(url, backend=False)
        self.client = TaskClient(url)
        self.redis = redis.Redis.from_url(url)

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.write_profiles()
        self.client.close()
        self.raw.close()
        self.raw_publisher.close()
        self.redis.close()

    def profiled(self, key: str, call: Callable[[], None]) -> Callable[[], None]:
        """`call`, profiled under `key` when profiling is on (figures are then not comparable)."""
        if self.profile_dir is None:
            return call
        profile = self.profiles.setdefault(key, cProfile.Profile())

        def run() -> None:
            profile.enable()
            try:
                call()
            finally:
                profile.disable()

        return run

    def write_profiles(self) -> None:
        if self.profile_dir is None:
            return
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        for key, profile in self.profiles.items():
            text = io.StringIO()
            stats = pstats.Stats(profile, stream=text)
            stats.sort_stats("tottime").print_stats(25)
            stats.sort_stats("cumulative").print_stats(25)
            (self.profile_dir / f"{key}.txt").write_text(text.getvalue())
        print(f"profiles written to {self.profile_dir}", file=sys.stderr)

    # -- sequential round trip ----------------------------------------------------------
    def sequential(self, calls: int, block: int = 20) -> list[Row]:
        raw, client = self.raw, self.client

        def raw_call() -> None:
            assert raw.send_task("math.add", args=[4, 7]).get(timeout=10) == 11

        def client_call() -> None:
            assert client.add(4, 7) == 11

        for _ in range(30):  # warm both paths: connections, subscriptions, imports
            raw_call()
            client_call()
        raw_times, client_times = _interleaved(
            self.profiled("sequential-raw", raw_call), self.profiled("sequential-client", client_call), calls, block
        )
        raw_rate, client_rate = len(raw_times) / sum(raw_times), len(client_times) / sum(client_times)
        detail = {
            "calls_per_side": calls,
            "raw": _latency(raw_times),
            "client": _latency(client_times),
        }
        return [
            Row(
                "sequential round trip, mean",
                "ms",
                _ms(statistics.fmean(client_times)),
                _ms(statistics.fmean(raw_times)),
                "lower",
                1.10,
                detail,
            ),
            Row(
                "sequential round trip, p50", "ms", _ms(_pct(client_times, 50)), _ms(_pct(raw_times, 50)), "lower", 1.10
            ),
            Row("sequential round trip, p99", "ms", _ms(_pct(client_times, 99)), _ms(_pct(raw_times, 99)), "lower"),
            Row("sequential round trip, calls/s", "calls/s", client_rate, raw_rate, "higher"),
        ]

    # -- publish cost -------------------------------------------------------------------
    def publish(self, calls: int, block: int = 100) -> list[Row]:
        plain, with_backend = self.raw_publisher, self.raw
        submit = self.client.add.with_options(queue=PUBLISH_QUEUE).submit

        def raw_publish() -> None:
            plain.send_task("math.add", args=[4, 7], queue=PUBLISH_QUEUE)

        def raw_publish_backend() -> None:
            with_backend.send_task("math.add", args=[4, 7], queue=PUBLISH_QUEUE)

        def client_publish() -> None:
            submit(4, 7)

        for _ in range(50):
            raw_publish()
            raw_publish_backend()
            client_publish()
        raw_times, client_times = _interleaved(
            self.profiled("publish-raw", raw_publish),
            self.profiled("publish-client", client_publish),
            calls,
            block,
            after=self._drain,
        )
        backend_times, client_times_2 = _interleaved(
            raw_publish_backend, client_publish, calls, block, after=self._drain
        )
        return [
            Row(
                "publish, validation included (raw: no backend)",
                "us",
                _us(statistics.fmean(client_times)),
                _us(statistics.fmean(raw_times)),
                "lower",
                1.25,
                {"raw_p50_us": _us(_pct(raw_times, 50)), "client_p50_us": _us(_pct(client_times, 50))},
            ),
            Row(
                "publish (raw: send_task with result backend)",
                "us",
                _us(statistics.fmean(client_times_2)),
                _us(statistics.fmean(backend_times)),
                "lower",
            ),
        ]

    def _drain(self) -> None:
        self.redis.delete(PUBLISH_QUEUE)

    # -- batches ------------------------------------------------------------------------
    def batches(self, calls: int, rounds: int) -> list[Row]:
        pairs = [(i, i) for i in range(calls)]
        expected = [2 * i for i in range(calls)]
        client, raw = self.client, self.raw
        add_aio = client.aio.add.with_options(timeout=BATCH_TIMEOUT)

        def raw_group() -> None:
            result = group(raw.signature("math.add", args=pair) for pair in pairs).apply_async()
            assert result.join_native(timeout=BATCH_TIMEOUT) == expected

        def client_map() -> None:
            assert client.add.map(pairs, timeout=BATCH_TIMEOUT) == expected

        def client_map_1() -> None:
            assert client.add.map(pairs, chunk_size=1, timeout=BATCH_TIMEOUT) == expected

        def client_aio() -> None:
            async def all_calls() -> list[int]:
                return await asyncio.gather(*(add_aio(x, y) for x, y in pairs))

            assert asyncio.run(all_calls()) == expected

        client_map()  # warm the chunk path once (small batches elsewhere warmed the rest)
        sides: dict[str, Callable[[], None]] = {
            "map": client_map,
            "map1": client_map_1,
            "aio": client_aio,
        }
        seconds: dict[str, list[float]] = {"raw": [], "map": [], "map1": [], "aio": []}
        # raw, map, map1, aio, ..., aio, map1, map, raw: every client run sits between raw runs.
        order = ["raw"]
        for number in range(rounds):
            names = ["map", "map1", "aio"]
            order += names if number % 2 == 0 else names[::-1]
            order.append("map")  # cheap: measure it more often
            order.append("raw")
        for name in order:
            print(f"  batch of {calls}: {name}...", file=sys.stderr, flush=True)
            run = self.profiled(f"batch-{name}", raw_group if name == "raw" else sides[name])
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
        raw_rate = calls / statistics.fmean(seconds["raw"])
        detail = {key: [round(value, 3) for value in values] for key, values in seconds.items()}
        return [
            Row(
                f"batch of {calls}, raw group + join_native",
                "calls/s",
                raw_rate,
                raw_rate,
                "higher",
                None,
                {"seconds": detail["raw"]},
            ),
            Row(
                f"batch of {calls}, map (default chunks)",
                "calls/s",
                calls / statistics.fmean(seconds["map"]),
                raw_rate,
                "higher",
                5.0,
                {"seconds": detail["map"]},
            ),
            Row(
                f"batch of {calls}, map chunk_size=1",
                "calls/s",
                calls / statistics.fmean(seconds["map1"]),
                raw_rate,
                "higher",
                1.0,
                {"seconds": detail["map1"]},
            ),
            Row(
                f"batch of {calls}, concurrent aio calls",
                "calls/s",
                calls / statistics.fmean(seconds["aio"]),
                raw_rate,
                "higher",
                1.0,
                {"seconds": detail["aio"]},
            ),
        ]

    # -- memory -------------------------------------------------------------------------
    def memory(self, calls: int, wave: int = 1000) -> list[Row]:
        """RSS growth of a fresh client process over `calls` aio calls (after a warm-up).

        The target row makes the calls `wave` at a time: what the client keeps after many calls.
        The second row awaits them all at once: the peak of that many calls in flight, next to
        plain asyncio awaiting as many thread-resolved futures (the floor for any such client).
        """
        print(f"  memory over {calls} calls...", file=sys.stderr, flush=True)
        waves = _memory_run([self.url, str(calls), str(wave)])
        burst = _memory_run([self.url, str(calls)])
        burst["plain_asyncio_baseline_mb"] = _memory_run(["baseline", str(calls)])["growth_mb"]
        return [
            Row(
                f"client memory growth after {calls} calls ({wave} at a time)",
                "MB",
                waves["growth_mb"],
                None,
                "lower",
                20.0,
                waves,
            ),
            Row(
                f"client memory growth, {calls} calls all in flight",
                "MB",
                burst["growth_mb"],
                None,
                "lower",
                None,
                burst,
            ),
        ]


def _memory_run(arguments: list[str]) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, "-m", "bench._memory", *arguments],
        check=True,
        capture_output=True,
        text=True,
        timeout=BATCH_TIMEOUT,
    ).stdout
    figures: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return figures


def _interleaved(
    raw: Callable[[], None],
    client: Callable[[], None],
    calls: int,
    block: int,
    after: Callable[[], None] | None = None,
) -> tuple[list[float], list[float]]:
    """Time each call; the sides alternate block by block, each side going first every other block."""
    raw_times: list[float] = []
    client_times: list[float] = []
    clock = time.perf_counter
    for number in range(max(1, calls // block)):
        turns = ((raw, raw_times), (client, client_times))
        for call, times in turns if number % 2 == 0 else turns[::-1]:
            for _ in range(block):
                started = clock()
                call()
                times.append(clock() - started)
        if after is not None:
            after()
    return raw_times, client_times


def _pct(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * percent / 100))]


def _latency(times: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(_ms(_pct(times, 50)), 3),
        "p99_ms": round(_ms(_pct(times, 99)), 3),
        "calls_per_s": round(len(times) / sum(times), 1),
    }


def _ms(seconds: float) -> float:
    return seconds * 1e3


def _us(seconds: float) -> float:
    return seconds * 1e6
