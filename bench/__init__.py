"""Benchmark of task-client against raw Celery; run with `make bench` (`python -m bench`)."""
