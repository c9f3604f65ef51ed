"""`make bench`: task-client on a default task-server worker against stock Celery, in one run.

    .venv/bin/python -m bench                  # the full run (about 5 minutes on 2 quiet cores)
    .venv/bin/python -m bench --quick          # smaller counts, for a smoke run
    .venv/bin/python -m bench --profile DIR    # cProfile of the caller and of our worker (skews figures)

The generated Go, PHP and TypeScript callers (examples/generated) are timed against task-client
on our worker too. Starts its own processes: a Redis and a default `task-server worker` for our side, another Redis
and a stock `celery worker` (Celery's defaults, `math.add` defined by name) for the stock side, an
echo process for the floor, and a worker with short result lifetimes for the Redis-cost row.
Prints a table and writes bench/results.json (every row with its ratio, target and met / not met).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from task_client import TaskClient
from task_server.testing import ProcessError, RabbitMQProcess, RedisProcess, WorkerProcess

from ._callers import caller_round_trips
from ._measure import Bench, write_profile
from ._report import Row, table
from ._stock import StockWorker, stock_app

RESULTS = Path(__file__).resolve().parent / "results.json"
#: Result lifetime (seconds) of the worker behind the Redis-cost row, so that it passes within the run.
SHORT_LIFETIME = 2.0


#: Parts of the run that `--only` can select.
SECTIONS = ("round-trips", "callers", "batches", "stream", "memory", "redis-cost", "concurrency", "rabbitmq")
#: Targets (calls/s ratio, p99 ratio) of the concurrent-callers rows, per broker (issue 18).
CONCURRENCY_TARGETS = {"Redis": (2.5, None), "RabbitMQ": (2.0, 0.5)}


def rabbitmq_rows(bench: Bench, args: argparse.Namespace, ours_url: str, stock_url: str, cpus: int) -> list[Row]:
    """RabbitMQ as the broker (results on Redis): a throwaway node, our worker and a stock one on it."""
    print("  RabbitMQ: starting a node...", file=sys.stderr, flush=True)
    try:
        rabbit = RabbitMQProcess()
    except ProcessError as error:  # no rabbitmq-server on this machine
        print(f"  RabbitMQ rows skipped: {error}", file=sys.stderr)
        return []
    rows: list[Row] = []
    with rabbit:
        rabbit.start()
        stock_broker = rabbit.add_vhost("stock")
        ours = WorkerProcess(rabbit.url, concurrency=cpus, extra_args=["--result-backend", ours_url], loglevel=None)
        stock = StockWorker(stock_broker, rabbit.workdir / "stock-worker.log", backend=stock_url)
        # For the round trip's reference row: stock Celery with the durability ours keeps.
        durable_broker = rabbit.add_vhost("stock-durable")
        durable = StockWorker(durable_broker, rabbit.workdir / "durable-worker.log", backend=stock_url, durable=True)
        with ours, stock, durable:
            ours.start()
            stock.start()
            if "round-trips" in args.only:
                durable.start()
                rows += bench.rabbitmq_round_trips(args.round_trips, rabbit.url, ours_url, stock_broker, durable_broker)
                durable.stop()
            if "batches" in args.only:
                rows += bench.rabbitmq_batches(args.rabbitmq_calls, args.rounds, rabbit.url, ours_url, stock_broker)
            if "concurrency" in args.only:
                client = TaskClient(rabbit.url, ours_url)
                stock_caller = stock_app(stock_broker, stock_url)
                try:
                    rows += bench.concurrent_callers(
                        "RabbitMQ",
                        client,
                        stock_caller,
                        args.callers,
                        args.caller_calls,
                        args.rounds,
                        CONCURRENCY_TARGETS["RabbitMQ"],
                    )
                finally:
                    client.close()
                    stock_caller.close()
    return rows


def _sections(text: str) -> set[str]:
    chosen = {part.strip() for part in text.split(",") if part.strip()}
    unknown = chosen - set(SECTIONS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown part(s) {', '.join(sorted(unknown))}; known: {', '.join(SECTIONS)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000, help="calls in each batch row [10000]")
    parser.add_argument("--round-trips", type=int, default=400, help="sequential round trips per side [400]")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each batch row; the median counts [3]")
    parser.add_argument("--stream-calls", type=int, default=1_000_000, help="calls streamed by imap [1000000]")
    parser.add_argument("--memory-calls", type=int, default=5_000, help="calls of the memory row [5000]")
    parser.add_argument("--redis-calls", type=int, default=2_000, help="calls of the Redis-cost rows [2000]")
    parser.add_argument("--rabbitmq-calls", type=int, default=10_000, help="calls in each RabbitMQ batch row [10000]")
    parser.add_argument("--callers", type=int, default=32, help="threads of the concurrent-callers rows [32]")
    parser.add_argument(
        "--caller-calls", type=int, default=100, help="sequential calls of each caller, per round [100]"
    )
    parser.add_argument("--no-rabbitmq", action="store_true", help="skip the RabbitMQ rows")
    parser.add_argument(
        "--only",
        type=_sections,
        default=set(SECTIONS),
        metavar="PART[,PART...]",
        help=f"run only these parts ({', '.join(SECTIONS)}); `rabbitmq` adds the RabbitMQ rows of the other"
        " parts chosen, e.g. `--only rabbitmq,concurrency` [all]",
    )
    parser.add_argument(
        "--no-callers", action="store_true", help="skip the generated Go, PHP and TypeScript callers' rows"
    )
    parser.add_argument("--quick", action="store_true", help="small counts (a smoke run, figures not comparable)")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="write cProfiles of the caller and our worker")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON file [{RESULTS.name}]")
    args = parser.parse_args(argv)
    if args.quick:
        args.calls, args.round_trips, args.rounds = 2000, 150, 1
        args.rabbitmq_calls, args.caller_calls = 2000, 20
        args.stream_calls, args.memory_calls, args.redis_calls = 100_000, 2000, 2000
    cpus = os.cpu_count() or 1

    started = time.monotonic()
    rows: list[Row] = []
    with RedisProcess() as ours, RedisProcess() as stock_redis, RedisProcess() as short_redis:
        for server in (ours, stock_redis, short_redis):
            server.start()
        # Our worker as deployed by default: prefork, one process per CPU (as the stock one).
        worker = WorkerProcess(ours.url, concurrency=cpus, loglevel=None)
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            worker.argv[1:3] = ["-m", "bench._profiled_worker", str(args.profile.resolve() / "worker.prof")]
        short = WorkerProcess(
            short_redis.url, concurrency=cpus, extra_args=["--result-ttl", str(SHORT_LIFETIME)], loglevel=None
        )
        stock = StockWorker(stock_redis.url, stock_redis.workdir / "stock-worker.log")
        with worker, short, stock:
            worker.start()
            short.start()
            stock.start()
            print(
                f"ours {ours.url}, stock {stock_redis.url}: {cpus} worker processes each; measuring...", file=sys.stderr
            )
            with Bench(ours.url, stock_redis.url, profile_dir=args.profile) as bench:
                only = args.only
                if "round-trips" in only:
                    rows += bench.round_trips(args.round_trips, echo_url=ours.url)
                if "callers" in only and not args.no_callers:
                    rows += caller_round_trips(ours.url, args.round_trips)
                map_rate = None
                if "batches" in only:
                    batch_rows, map_rate = bench.batches(args.calls, args.rounds)
                    rows += batch_rows
                if "stream" in only and args.stream_calls and map_rate is not None:
                    rows += bench.stream(args.stream_calls, map_rate)
                if "memory" in only:
                    rows += bench.memory(args.memory_calls)
                if "redis-cost" in only:
                    rows += bench.redis_cost(args.redis_calls, short_redis.url, SHORT_LIFETIME)
                if "concurrency" in only:
                    rows += bench.concurrent_callers(
                        "Redis",
                        bench.client,
                        bench.stock,
                        args.callers,
                        args.caller_calls,
                        args.rounds,
                        CONCURRENCY_TARGETS["Redis"],
                    )
                if "rabbitmq" in only and not args.no_rabbitmq:
                    rows += rabbitmq_rows(bench, args, ours.url, stock_redis.url, cpus)
    if args.profile:
        profile = args.profile / "worker.prof"
        if profile.exists():
            write_profile(pstats.Stats(str(profile)), args.profile / "worker.txt")
    elapsed = time.monotonic() - started
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": cpus,
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": {
            **{key: value for key, value in vars(args).items() if key not in ("output", "profile", "only")},
            "only": sorted(args.only),
        },
        "elapsed_s": round(elapsed, 1),
        "targets_met": sum(bool(row.met) for row in rows),
        "targets": sum(row.met is not None for row in rows),
        "rows": [row.as_dict() for row in rows],
    }
    print(table(rows))
    print(
        f"\n{report['targets_met']} of {report['targets']} targets met; {elapsed:.0f} s;"
        f" load average {os.getloadavg()[0]:.2f} on {cpus} CPUs"
    )
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
