"""`python -m bench._profiled_worker OUT worker ...`: `task-server worker` under cProfile (`bench --profile`).

The main process is profiled, and so is every task it runs on its threads (contracts declared
`cpu_bound=False`), each thread with a profiler of its own, merged at exit. Prefork children are not.
"""

from __future__ import annotations

import atexit
import cProfile
import pstats
import runpy
import sys
import threading
from typing import Any

import celery.concurrency.thread as celery_threads


def run(out: str, argv: list[str]) -> None:
    main_profile = cProfile.Profile()
    thread_profiles: list[cProfile.Profile] = []
    local = threading.local()
    apply_target = celery_threads.apply_target

    def profiled(*args: Any, **kwargs: Any) -> Any:
        profile = getattr(local, "profile", None)
        if profile is None:
            profile = local.profile = cProfile.Profile()
            thread_profiles.append(profile)
        profile.enable()
        try:
            return apply_target(*args, **kwargs)
        finally:
            profile.disable()

    celery_threads.apply_target = profiled  # type: ignore[assignment]
    written: list[bool] = []

    def write() -> None:
        if written:
            return
        written.append(True)
        main_profile.disable()
        stats = pstats.Stats(main_profile)
        for profile in thread_profiles:
            stats.add(profile)
        stats.dump_stats(out)

    atexit.register(write)
    sys.argv = ["task-server", *argv]
    main_profile.enable()
    try:
        runpy.run_module("task_server", run_name="__main__")
    finally:
        write()


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2:])
