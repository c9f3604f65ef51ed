"""The measurements. Every side takes turns with the others (A B C, C B A, ...) so machine noise
spreads evenly, gets the same warm-up, and is measured the same way.

Sides: ours (`task-client` calling a default `task-server worker`), stock (Celery's own
`send_task`/`group`/`chunks` calling a stock `celery worker` on a Redis of its own) and, for
round trips, the echo floor (LPUSH/BRPOP between two processes through our Redis).
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import pstats
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import redis
from celery import chunks, group

from task_client import TaskClient
from task_contracts.wire import RESULT_KEY_PREFIX

from ._report import Row
from ._stock import DURABLE_QUEUE, stock_app

BATCH_TIMEOUT = 900.0
#: Why the RabbitMQ round trip misses 0.7x stock, as measured (docs/performance.md, "Where a round trip's time goes").
RABBITMQ_ROUND_TRIP_NOTE = (
    "stock publishes without confirms into a classic queue; a quorum queue delivers only after its"
    " commit, ~1.1 ms more than a classic one here, more than 0.7x leaves for every other part"
)
#: Keys a finished call of ours may leave in Redis: its record and its start counter.
CALL_KEY_PATTERNS = (RESULT_KEY_PREFIX + "*", "task-sdk-deliveries-*")


class Bench:
    def __init__(self, ours_url: str, stock_url: str, profile_dir: Path | None = None) -> None:
        self.ours_url = ours_url
        self.stock_url = stock_url
        # cProfile of the calling thread per side and row; the result thread is not profiled.
        self.profile_dir = profile_dir
        self.profiles: dict[str, cProfile.Profile] = {}
        self.stock = stock_app(stock_url)
        self.client = TaskClient(ours_url)
        self.redis = redis.Redis.from_url(ours_url)
        self.stock_redis = redis.Redis.from_url(stock_url)

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.write_profiles()
        self.client.close()
        self.stock.close()
        self.redis.close()
        self.stock_redis.close()

    def profiled(self, key: str, call: Callable[[], Any]) -> Callable[[], Any]:
        """`call`, profiled under `key` when profiling is on (figures are then not comparable)."""
        if self.profile_dir is None:
            return call
        profile = self.profiles.setdefault(key, cProfile.Profile())

        def run() -> Any:
            profile.enable()
            try:
                return call()
            finally:
                profile.disable()

        return run

    def write_profiles(self) -> None:
        if self.profile_dir is None:
            return
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        for key, profile in self.profiles.items():
            write_profile(pstats.Stats(profile), self.profile_dir / f"client-{key}.txt")
        print(f"profiles written to {self.profile_dir}", file=sys.stderr)

    # -- round trips ----------------------------------------------------------------------
    def round_trips(self, calls: int, echo_url: str, block: int = 20) -> list[Row]:
        stock, client = self.stock, self.client
        echo = Echo(echo_url)

        def stock_call() -> None:
            assert stock.send_task("math.add", args=[4, 7]).get(timeout=10) == 11

        def our_call() -> None:
            assert client.add(4, 7) == 11

        sides = {
            "stock": self.profiled("round-trip-stock", stock_call),
            "ours": self.profiled("round-trip-ours", our_call),
            "echo": echo.call,
        }
        try:
            times = interleaved(sides, calls, block, warm_up=30)
        finally:
            echo.close()
        p50 = {name: _pct(values, 50) for name, values in times.items()}
        detail = {name: _latency(values) for name, values in times.items()}
        return [
            Row(
                "round trip p50: client.add(4, 7) vs stock send_task().get()",
                "ms",
                _ms(p50["ours"]),
                _ms(p50["stock"]),
                "lower",
                0.5,
                {"calls_per_side": calls, **detail},
            ),
            Row(
                "round trip p50: client.add(4, 7) vs the LPUSH/BRPOP echo floor",
                "ms",
                _ms(p50["ours"]),
                _ms(p50["echo"]),
                "lower",
                4.0,
            ),
            Row(
                "round trip p99: client.add(4, 7) vs stock send_task().get()",
                "ms",
                _ms(_pct(times["ours"], 99)),
                _ms(_pct(times["stock"], 99)),
                "lower",
            ),
        ]

    def rabbitmq_round_trips(
        self, calls: int, broker: str, ours_backend: str, stock_broker: str, durable_broker: str
    ) -> list[Row]:
        """The same round trip with RabbitMQ as the broker (results still on Redis), both sides, and a
        third: stock Celery publishing with confirms into a quorum queue (`durable_broker`), as ours does."""
        stock = stock_app(stock_broker, self.stock_url)
        durable = stock_app(durable_broker, self.stock_url, durable=True)
        client = TaskClient(broker, ours_backend)
        try:

            def stock_call() -> None:
                assert stock.send_task("math.add", args=[4, 7]).get(timeout=10) == 11

            def durable_call() -> None:
                assert durable.send_task("math.add", args=[4, 7], queue=DURABLE_QUEUE).get(timeout=10) == 11

            def our_call() -> None:
                assert client.add(4, 7) == 11

            sides = {"stock": stock_call, "ours": our_call, "stock durable": durable_call}
            times = interleaved(sides, calls, 20, warm_up=30)
        finally:
            client.close()
            stock.close()
            durable.close()
        p50 = Row(
            "RabbitMQ broker: round trip p50, client.add(4, 7) vs stock send_task().get()",
            "ms",
            _ms(_pct(times["ours"], 50)),
            _ms(_pct(times["stock"], 50)),
            "lower",
            0.7,
            {"calls_per_side": calls, **{name: _latency(values) for name, values in times.items()}},
        )
        if not p50.met:
            p50.note = RABBITMQ_ROUND_TRIP_NOTE
        return [
            p50,
            Row(
                "RabbitMQ broker: round trip p99, client.add(4, 7) vs stock send_task().get()",
                "ms",
                _ms(_pct(times["ours"], 99)),
                _ms(_pct(times["stock"], 99)),
                "lower",
            ),
            Row(
                "RabbitMQ broker: round trip p50 vs stock with quorum queue + confirms (as ours)",
                "ms",
                _ms(_pct(times["ours"], 50)),
                _ms(_pct(times["stock durable"], 50)),
                "lower",
            ),
        ]

    def rabbitmq_batches(self, calls: int, rounds: int, broker: str, ours_backend: str, stock_broker: str) -> list[Row]:
        """One message per call and map against stock `group` + `join_native`, RabbitMQ as the broker."""
        stock = stock_app(stock_broker, self.stock_url)
        client = TaskClient(broker, ours_backend)
        try:
            sides = _batch_sides(client, stock, ("stock group", "map", "map chunk_size=1"))
            seconds = _batch_rounds(sides, calls, rounds)
        finally:
            client.close()
            stock.close()
        rate = {name: calls / statistics.median(values) for name, values in seconds.items()}
        detail = {name: {"seconds": [round(value, 3) for value in values]} for name, values in seconds.items()}
        return [
            Row(
                f"RabbitMQ: {calls:,} calls, one message each: map(chunk_size=1) vs stock group + join_native",
                "calls/s",
                rate["map chunk_size=1"],
                rate["stock group"],
                "higher",
                1.5,
                {"ours": detail["map chunk_size=1"], "stock": detail["stock group"]},
            ),
            Row(
                f"RabbitMQ: {calls:,} calls: map (default chunks) vs stock group + join_native",
                "calls/s",
                rate["map"],
                rate["stock group"],
                "higher",
                30.0,
                {"ours": detail["map"]},
            ),
        ]

    # -- concurrent callers ---------------------------------------------------------------
    def concurrent_callers(
        self,
        broker_name: str,
        client: TaskClient,
        stock: Any,
        callers: int,
        calls: int,
        rounds: int,
        targets: tuple[float | None, float | None],
    ) -> list[Row]:
        """`callers` threads, each making `calls` sequential sync calls, sharing one client (or one
        stock Celery app) as a threaded program would; rounds alternate the sides (ours, stock, stock, ours...).

        calls/s is all calls over the wall time of the round (median of the rounds); p99 is over
        every call's round trip of every round."""

        def stock_call() -> None:
            assert stock.send_task("math.add", args=[4, 7]).get(timeout=60) == 11

        def our_call() -> None:
            assert client.add(4, 7) == 11

        sides = {"stock": stock_call, "ours": our_call}
        for name, call in sides.items():  # the same warm-up: every thread makes a few calls
            print(f"  {broker_name}: {callers} callers, warm-up: {name}", file=sys.stderr, flush=True)
            _threaded(call, callers, 5)
        rates: dict[str, list[float]] = {name: [] for name in sides}
        times: dict[str, list[float]] = {name: [] for name in sides}
        names = list(sides)
        for number in range(rounds):
            for name in names if number % 2 == 0 else names[::-1]:
                print(
                    f"  {broker_name}: {callers} callers x {calls} calls, round {number + 1}: {name}...",
                    file=sys.stderr,
                    flush=True,
                )
                wall, samples = _threaded(sides[name], callers, calls)
                rates[name].append(callers * calls / wall)
                times[name] += samples
        rate = {name: statistics.median(values) for name, values in rates.items()}
        detail = {
            "callers": callers,
            "calls_per_caller_per_round": calls,
            "rounds": rounds,
            **{
                name: {**_latency(times[name]), "calls_per_s_rounds": [round(value, 1) for value in rates[name]]}
                for name in sides
            },
        }
        return [
            Row(
                f"{broker_name}: {callers} concurrent callers (threads, sync client) vs {callers} stock callers",
                "calls/s",
                rate["ours"],
                rate["stock"],
                "higher",
                targets[0],
                detail,
            ),
            Row(
                f"{broker_name}: {callers} concurrent callers, round trip p99 vs {callers} stock callers",
                "ms",
                _ms(_pct(times["ours"], 99)),
                _ms(_pct(times["stock"], 99)),
                "lower",
                targets[1],
            ),
        ]

    # -- batches ------------------------------------------------------------------------
    def _profiled_batch(self, name: str, run: Callable[[int], None]) -> Callable[[int], None]:
        key = f"batch-{name.replace(' ', '-')}"
        return lambda count: self.profiled(key, lambda: run(count))()

    def batches(self, calls: int, rounds: int) -> tuple[list[Row], float]:
        """The batch rows, and our map's calls per second (the streamed row compares with it)."""
        names = ("stock group", "stock chunks", "map", "map chunk_size=1", "aio")
        sides = {
            name: self._profiled_batch(name, run) for name, run in _batch_sides(self.client, self.stock, names).items()
        }
        # The rows with a target take part in every round; the aio row (information only) in one.
        seconds = _batch_rounds({name: run for name, run in sides.items() if name != "aio"}, calls, rounds)
        print("  warm-up: aio", file=sys.stderr, flush=True)
        sides["aio"](max(100, calls // 10))
        print(f"  batch of {calls}: aio...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        sides["aio"](calls)
        seconds["aio"] = [time.perf_counter() - started]
        rate = {name: calls / statistics.median(values) for name, values in seconds.items()}
        detail = {name: {"seconds": [round(value, 3) for value in values]} for name, values in seconds.items()}
        rows = [
            Row(
                f"{calls:,} calls, one message each: map(chunk_size=1) vs stock group + join_native",
                "calls/s",
                rate["map chunk_size=1"],
                rate["stock group"],
                "higher",
                2.0,
                {"ours": detail["map chunk_size=1"], "stock": detail["stock group"]},
            ),
            Row(
                f"{calls:,} calls: map (default chunks) vs stock group + join_native",
                "calls/s",
                rate["map"],
                rate["stock group"],
                "higher",
                50.0,
                {"ours": detail["map"]},
            ),
            Row(
                f"{calls:,} calls: map (default chunks) vs stock chunks(250) + join_native",
                "calls/s",
                rate["map"],
                rate["stock chunks"],
                "higher",
                None,
                {"stock": detail["stock chunks"]},
            ),
            Row(
                f"{calls:,} calls: stock chunks(250) vs stock group (how much chunks help Celery)",
                "calls/s",
                rate["stock chunks"],
                rate["stock group"],
                "higher",
            ),
            Row(
                f"{calls:,} calls: concurrent client.aio.add vs stock group + join_native",
                "calls/s",
                rate["aio"],
                rate["stock group"],
                "higher",
                None,
                {"ours": detail["aio"]},
            ),
        ]
        return rows, rate["map"]

    # -- streaming ----------------------------------------------------------------------
    def stream(self, calls: int, map_rate: float) -> list[Row]:
        print(f"  streaming {calls:,} calls through imap...", file=sys.stderr, flush=True)
        figures = _memory_run(["stream", self.ours_url, str(calls)])
        return [
            Row(
                f"{calls:,} calls streamed (imap): throughput vs the map row",
                "calls/s",
                figures["calls_per_s"],
                map_rate,
                "higher",
                0.8,
                figures,
            ),
            Row(
                f"{calls:,} calls streamed (imap): client memory growth",
                "MB",
                figures["growth_mb"],
                None,
                "lower",
                100.0,
            ),
        ]

    # -- memory -------------------------------------------------------------------------
    def memory(self, calls: int) -> list[Row]:
        """RSS growth of a fresh calling process over `calls` calls, one message each, both sides alike."""
        print(f"  memory over {calls} calls, each side in a fresh process...", file=sys.stderr, flush=True)
        ours = _memory_run(["ours", self.ours_url, str(calls)])
        stock = _memory_run(["stock", self.stock_url, str(calls)])
        return [
            Row(
                f"caller memory growth over {calls:,} calls, one message each (map vs group)",
                "MB",
                ours["growth_mb"],
                stock["growth_mb"],
                "lower",
                None,
                {"ours": ours, "stock": stock},
            )
        ]

    # -- Redis cost ---------------------------------------------------------------------
    def redis_cost(self, calls: int, short_url: str, lifetime: float) -> list[Row]:
        """Redis bytes per finished call: while kept, and once its lifetime has passed.

        `short_url` is a Redis served by a worker started with `--result-ttl lifetime`, so the
        lifetime passes within the run (a default worker keeps a record 10 x the contract's timeout,
        at least 300 s); the stock worker keeps its results a day (`result_expires`).
        """
        print(f"  Redis cost of {calls} calls...", file=sys.stderr, flush=True)
        short = redis.Redis.from_url(short_url)
        try:
            with TaskClient(short_url) as client:
                before = short.info("memory")["used_memory"]
                pairs = [(i, 1) for i in range(calls)]
                assert client.add.map(pairs, chunk_size=1, timeout=BATCH_TIMEOUT) == [i + 1 for i in range(calls)]
                kept = _call_bytes(short) / calls
                held = (short.info("memory")["used_memory"] - before) / calls
                deadline = time.monotonic() + lifetime + 60
                while _call_keys(short) and time.monotonic() < deadline:
                    time.sleep(0.2)  # expired keys go as Redis samples them, or as SCAN meets them
                after_keys = _call_keys(short)
                after_bytes = _call_bytes(short) / calls
                after_used = (short.info("memory")["used_memory"] - before) / calls
        finally:
            short.close()
        stock_before = self.stock_redis.info("memory")["used_memory"]
        stock_keys_before = self.stock_redis.dbsize()
        result = group(self.stock.signature("math.add", args=(i, 1)) for i in range(calls)).apply_async()
        assert result.join_native(timeout=BATCH_TIMEOUT) == [i + 1 for i in range(calls)]
        stock_held = (self.stock_redis.info("memory")["used_memory"] - stock_before) / calls
        stock_ttl = self.stock_redis.ttl(RESULT_KEY_PREFIX + result.results[0].id)
        return [
            Row(
                "Redis bytes per finished call, after its lifetime",
                "B",
                after_bytes,
                None,
                "lower",
                0.0,
                {
                    "calls": calls,
                    "lifetime_s": lifetime,
                    "keys_left": after_keys,
                    "used_memory_delta_per_call_after_lifetime": round(after_used, 1),
                },
            ),
            Row(
                "Redis bytes per finished call while kept (used_memory): ours vs stock",
                "B",
                held,
                stock_held,
                "lower",
                None,
                {
                    "ours_key_bytes_per_call": round(kept, 1),
                    "stock_keys_added": self.stock_redis.dbsize() - stock_keys_before,
                    "stock_result_ttl_s": stock_ttl,
                },
            ),
        ]


def _call_keys(client: redis.Redis) -> int:
    return sum(1 for pattern in CALL_KEY_PATTERNS for _ in client.scan_iter(pattern, count=1000))


def _call_bytes(client: redis.Redis) -> int:
    total = 0
    for pattern in CALL_KEY_PATTERNS:
        for key in client.scan_iter(pattern, count=1000):
            total += client.memory_usage(key) or 0
    return total


def _batch_sides(client: TaskClient, stock: Any, names: tuple[str, ...]) -> dict[str, Callable[[int], None]]:
    """Batch runners by name: stock `group` / `chunks(250)` + `join_native`, our `map` (default chunks
    or one message per call) and concurrent `client.aio.add`; each checks every value."""
    add_aio = client.aio.add.with_options(timeout=BATCH_TIMEOUT)

    def pairs(count: int) -> list[tuple[int, int]]:
        return [(i, i) for i in range(count)]

    def stock_group(count: int) -> None:
        result = group(stock.signature("math.add", args=pair) for pair in pairs(count)).apply_async()
        assert result.join_native(timeout=BATCH_TIMEOUT) == [2 * i for i in range(count)]

    def stock_chunks(count: int) -> None:
        result = chunks(stock.signature("math.add"), pairs(count), 250, app=stock).group().apply_async()
        flat = [value for chunk in result.join_native(timeout=BATCH_TIMEOUT) for value in chunk]
        assert flat == [2 * i for i in range(count)]

    def our_map(count: int) -> None:
        assert client.add.map(pairs(count), timeout=BATCH_TIMEOUT) == [2 * i for i in range(count)]

    def our_map_1(count: int) -> None:
        assert client.add.map(pairs(count), chunk_size=1, timeout=BATCH_TIMEOUT) == [2 * i for i in range(count)]

    def our_aio(count: int) -> None:
        async def all_calls() -> list[int]:
            return await asyncio.gather(*(add_aio(x, y) for x, y in pairs(count)))

        assert asyncio.run(all_calls()) == [2 * i for i in range(count)]

    every: dict[str, Callable[[int], None]] = {
        "stock group": stock_group,
        "stock chunks": stock_chunks,
        "map": our_map,
        "map chunk_size=1": our_map_1,
        "aio": our_aio,
    }
    return {name: every[name] for name in names}


def _batch_rounds(sides: dict[str, Callable[[int], None]], calls: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per round of each side: the same warm-up for all, then rounds in alternating order."""
    for name, run in sides.items():
        print(f"  warm-up: {name}", file=sys.stderr, flush=True)
        run(max(100, calls // 10))
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for number in range(rounds):
        for name in names if number % 2 == 0 else names[::-1]:
            print(f"  batch of {calls}, round {number + 1}: {name}...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            sides[name](calls)
            seconds[name].append(time.perf_counter() - started)
    return seconds


def _threaded(call: Callable[[], None], threads: int, calls: int) -> tuple[float, list[float]]:
    """Wall time of `threads` threads making `calls` calls each (started together), and every call's time."""
    barrier = threading.Barrier(threads + 1)
    samples: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    clock = time.perf_counter

    def caller(own: list[float]) -> None:
        barrier.wait(timeout=60)
        try:
            for _ in range(calls):
                started = clock()
                call()
                own.append(clock() - started)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    workers = [threading.Thread(target=caller, args=(own,), daemon=True) for own in samples]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=60)
    started = clock()
    for worker in workers:
        worker.join(timeout=BATCH_TIMEOUT)
    wall = clock() - started
    if errors or any(worker.is_alive() for worker in workers):
        raise RuntimeError(f"{len(errors)} of {threads} callers failed: {errors[:1]!r}")
    return wall, [value for own in samples for value in own]


class Echo:
    """The floor: LPUSH a request, BRPOP its echo from a second process (`bench._echo`)."""

    def __init__(self, url: str) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.requests, self.replies = f"bench-echo-requests-{suffix}", f"bench-echo-replies-{suffix}"
        self.redis = redis.Redis.from_url(url)
        self.process = subprocess.Popen([sys.executable, "-m", "bench._echo", url, self.requests, self.replies])
        ready = self.redis.brpop([self.replies], timeout=30)
        if ready is None:
            self.close()
            raise RuntimeError("the echo process did not start within 30 s")

    def call(self) -> None:
        self.redis.lpush(self.requests, b"4,7")
        assert self.redis.brpop([self.replies], timeout=10) is not None

    def close(self) -> None:
        self.redis.lpush(self.requests, b"stop")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.redis.close()


def write_profile(stats: pstats.Stats, path: Path) -> None:
    text = io.StringIO()
    stats.stream = text  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(30)
    path.write_text(text.getvalue())


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


def interleaved(sides: dict[str, Callable[[], None]], calls: int, block: int, warm_up: int) -> dict[str, list[float]]:
    """Time each call; the sides take turns block by block, in reverse order every other block."""
    for _ in range(warm_up):
        for call in sides.values():
            call()
    times: dict[str, list[float]] = {name: [] for name in sides}
    clock = time.perf_counter
    names = list(sides)
    for number in range(max(1, calls // block)):
        for name in names if number % 2 == 0 else names[::-1]:
            call, samples = sides[name], times[name]
            for _ in range(block):
                started = clock()
                call()
                samples.append(clock() - started)
    return times


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
