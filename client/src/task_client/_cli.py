"""`task-client`: call contracts, fetch results and inspect workers from a terminal or a script."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import click

from task_contracts import CATALOG, ConnectionConfigError, Contract, ContractCatalog, ResultError, load_catalog

from ._cancel import CancelResult
from ._client import TaskClient
from ._errors import (
    BrokerUnavailable,
    ContractMismatch,
    InvalidArguments,
    TaskCancelled,
    TaskError,
    TaskExpired,
    TaskFailed,
    TaskTimeout,
    UnknownTask,
)
from ._handle import TaskHandle
from ._inspect import WorkerInfo, contract_problems, contract_warnings
from ._outcome import decode_outcome
from ._progressbar import ProgressDisplay
from ._steps import run_sync

EXIT_USAGE = 2
EXIT_TASK_FAILED = 3
EXIT_TIMEOUT = 4
EXIT_BROKER_UNAVAILABLE = 5
EXIT_CONTRACT = 6
EXIT_REVOKED = 7

_EXIT_CODES = f"""\b
Exit status:
  0  success
  1  unexpected error
  {EXIT_USAGE}  usage error: bad option, unknown contract, arguments that do not satisfy the contract
  {EXIT_TASK_FAILED}  the task failed on the worker (or the worker refused the message)
  {EXIT_TIMEOUT}  no result within the timeout (the task may still run: `task-client result ID`)
  {EXIT_BROKER_UNAVAILABLE}  the broker or result backend cannot be reached
  {EXIT_CONTRACT}  contract problem: no worker serves it, or a worker holds another version
  {EXIT_REVOKED}  the call was cancelled, or expired before it started
"""

#: A negative number given as an argument, not an option (JSON's number syntax, plus a bare -.5).
_NUMBER = re.compile(r"-(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")

#: UI refresh period while waiting with a progress display; results still arrive by pub/sub.
_REFRESH = 0.1


class _Options:
    def __init__(self, broker_url: str | None, result_backend: str | None, catalog: ContractCatalog) -> None:
        self.broker_url = broker_url
        self.result_backend = result_backend
        self.catalog = catalog

    @contextmanager
    def client(self) -> Iterator[TaskClient]:
        try:
            client = TaskClient(self.broker_url, self.result_backend, catalog=self.catalog)
        except ConnectionConfigError as error:
            raise click.UsageError(str(error)) from None
        with client:
            yield client


_pass_options = click.make_pass_decorator(_Options)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object (machine output).")


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=_EXIT_CODES,
)
@click.option(
    "--broker-url",
    envvar="TASK_BROKER_URL",
    metavar="URL",
    help="Broker URL [env TASK_BROKER_URL; default redis://127.0.0.1:6379/0].",
)
@click.option(
    "--result-backend",
    envvar="TASK_RESULT_BACKEND",
    metavar="URL",
    help="Result backend URL [env TASK_RESULT_BACKEND; default: the broker URL].",
)
@click.option(
    "--catalog",
    "catalog_spec",
    envvar="TASK_CATALOG",
    metavar="MODULE:NAME",
    help="The ContractCatalog to use [env TASK_CATALOG; default task_contracts.catalog:CATALOG].",
)
@click.pass_context
def main(ctx: click.Context, broker_url: str | None, result_backend: str | None, catalog_spec: str | None) -> None:
    """Call task contracts by name, fetch results, and ask workers what they serve.

    \b
    Examples:
      task-client call add 4 7                  # prints 11
      task-client call xsum '[1, 2, 3]'         # structured arguments are JSON
      task-client call count_to 20 -p delay=0.1 --progress
      task-client call add 4 7 --no-wait        # prints the task id
      task-client result 1f0c...-... --contract add
      task-client contracts
      task-client workers
    """
    catalog = CATALOG
    if catalog_spec:
        try:
            catalog = load_catalog(catalog_spec)
        except (ImportError, AttributeError, ValueError, TypeError) as error:
            raise click.BadParameter(str(error), param_hint="--catalog") from None
    ctx.obj = _Options(broker_url, result_backend, catalog)


@main.command(epilog=_EXIT_CODES, context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("args", nargs=-1)
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A named argument (repeatable); needed for keyword-only parameters.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds to wait for the result [default: the contract's timeout].",
)
@click.option("--queue", metavar="QUEUE", help="Publish on this queue instead of the contract's.")
@click.option("--no-wait", is_flag=True, help="Publish, print the task id and exit without waiting.")
@click.option(
    "--countdown",
    type=click.FloatRange(min=0),
    help="Run no sooner than this many seconds from now (Celery countdown); the wait counts from then.",
)
@click.option(
    "--eta",
    metavar="DATETIME",
    help="Run no sooner than this ISO 8601 time with a zone, e.g. 2030-01-01T12:00:00+00:00 (Celery eta).",
)
@click.option(
    "--expires",
    metavar="SECONDS|DATETIME",
    help="Never run if not started within SECONDS or by this ISO 8601 time with a zone (Celery expires).",
)
@click.option(
    "--priority", type=click.IntRange(0, 9), help="Message priority, 0-9; on Redis 0 is served first (Celery priority)."
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show progress reports on stderr [default: only when stderr is a terminal].",
)
@_json_option
@_pass_options
def call(
    options: _Options,
    name: str,
    args: tuple[str, ...],
    params: tuple[str, ...],
    timeout: float | None,
    queue: str | None,
    no_wait: bool,
    countdown: float | None,
    eta: str | None,
    expires: str | None,
    priority: int | None,
    progress: bool | None,
    as_json: bool,
) -> None:
    """Call contract NAME with ARGS and print its result.

    NAME is a wire name (math.add) or its last part (add) when that is unique. ARGS are the
    positional arguments in the contract's order. Each value is read by the parameter's type:
    text as-is for a `str` parameter, JSON otherwise (4, 2.5, true, '[1, 2]', '{"x": 1}').
    Arguments are validated against the contract before anything is published.
    """
    for text in args:  # unknown options reach ARGS, so that negative numbers do (`call charge cust -5`)
        if text.startswith("-") and not _NUMBER.fullmatch(text):
            raise click.NoSuchOption(text.split("=", 1)[0])
    item = _find_contract(options.catalog, name)
    positional, named = _parse_arguments(item, args, params)
    due = _parse_time("--eta", eta) if eta else None
    expiry = _parse_expiry(expires) if expires else None
    with options.client() as client:
        try:
            remote = client.task(item).with_options(
                timeout=timeout, queue=queue, countdown=countdown, eta=due, expires=expiry, priority=priority
            )
        except (TypeError, ValueError) as error:
            raise click.UsageError(str(error)) from None
        try:
            handle = remote.submit(*positional, **named)
        except TaskError as error:
            _fail(error, as_json)
        if no_wait:
            _emit(as_json, {"task_id": handle.id, "contract": item.name, "status": "PENDING"}, handle.id)
            return
        show = sys.stderr.isatty() if progress is None else progress
        try:
            value = _wait(handle, remote.timeout, show)
        except TaskError as error:
            _fail(error, as_json)
        encoded = item.encode_result(value)
        _emit(as_json, {"task_id": handle.id, "contract": item.name, "status": "SUCCESS", "result": encoded}, encoded)


@main.command(epilog=_EXIT_CODES)
@click.argument("task_id", metavar="ID")
@click.option("--contract", "contract_name", metavar="NAME", help="Validate the result against this contract.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    help="Seconds to wait if the task has not finished [default: the contract's timeout, or 10].",
)
@_json_option
@_pass_options
def result(options: _Options, task_id: str, contract_name: str | None, timeout: float | None, as_json: bool) -> None:
    """Print the result of an earlier call, waiting for it if it is still running.

    Without --contract the stored value is printed as it is (JSON); with it, the value is
    validated against the contract's result type. An id that names no call (no record, not
    running, its message on none of the client's queues) ends at once with status 2; where the
    broker cannot be searched (not plain Redis, or a very long queue), it waits and ends with the
    timeout status.
    """
    item = _find_contract(options.catalog, contract_name) if contract_name else None
    bound = timeout if timeout is not None else (item.timeout if item else 10.0)
    with options.client() as client:
        try:
            _say_what_is_known(client, task_id, bound)
            record = _wait_for_record(client, item, task_id, bound)
            encoded = _decode_for_cli(item, task_id, record)
        except TaskError as error:
            _fail(error, as_json)
    payload = {"task_id": task_id, "contract": item.name if item else None, "status": "SUCCESS", "result": encoded}
    _emit(as_json, payload, encoded)


def _say_what_is_known(client: TaskClient, task_id: str, bound: float) -> None:
    """Before waiting for a record that is not there: stop at once for an id that names no call,
    and otherwise say what is known, rather than wait `bound` seconds in silence."""
    runtime = client._runtime  # the CLI is part of the package
    if run_sync(runtime.producer, runtime.read(None, task_id)) is not None:
        return
    queues = client._searched_queues()
    known = run_sync(runtime.producer, runtime.is_known(task_id, queues))
    if known is False:
        searched = ", ".join(queues)
        click.echo(
            f"task-client: no call with id {task_id!r} is queued, running or finished "
            f"(searched the queues {searched} and the delivered calls)",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    where = "queued or running" if known else "not found on this broker's queues (it cannot be searched)"
    click.echo(f"task-client: {task_id}: no result yet, {where}; waiting up to {bound:g} s", err=True)


def _wait_for_record(client: TaskClient, item: Contract[..., Any] | None, task_id: str, bound: float) -> Any:
    runtime = client._runtime
    return run_sync(runtime.producer, runtime.wait(item.name if item else None, task_id, bound))


def _decode_for_cli(item: Contract[..., Any] | None, task_id: str, record: dict[str, Any]) -> Any:
    """The stored value (JSON) as the contract reads it; a value that does not fit `--contract`
    is a usage error that says so and shows the whole value, not the worker's fault."""
    if item is None:
        return decode_outcome(None, task_id, record)
    if record.get("status") == "SUCCESS":
        try:
            item.decode_result(record.get("result"))
        except ResultError as error:
            stored = json.dumps(record.get("result"), ensure_ascii=False)
            raise click.UsageError(
                f"the result of {task_id} does not fit --contract {item.name} ({'; '.join(error.problems)}): "
                f"is it a call of another contract? The stored value: {stored}"
            ) from None
    return item.encode_result(decode_outcome(item, task_id, record))


@main.command(epilog=_EXIT_CODES)
@click.argument("task_id", metavar="ID")
@_json_option
@_pass_options
def cancel(options: _Options, task_id: str, as_json: bool) -> None:
    """Cancel the call ID and say what that did.

    \b
    cancelled   it had not started: it never runs, and its waiters get TaskCancelled
    terminated  it was running and its contract is interruptible: the worker stops it
    running     it is running and cannot be interrupted: it finishes, but is not run again
    finished    it had already finished: nothing changed (exit status 0)
    unknown     no call with this ID is queued, running or finished (exit status 2); only a
                cancel mark is kept, so that such a message, if one turns up, never runs
    """
    with options.client() as client:
        try:
            outcome = client.cancel(task_id)
        except TaskError as error:
            _fail(error, as_json)
    _emit(as_json, {"task_id": task_id, "cancel": outcome.value}, f"{task_id}: {outcome.value}")
    if outcome is CancelResult.UNKNOWN:
        click.echo(f"task-client: no call with id {task_id!r} is queued, running or finished", err=True)
        sys.exit(EXIT_USAGE)


def _parse_time(option: str, text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time", param_hint=option) from None
    if value.tzinfo is None:
        raise click.BadParameter(f"{text!r} has no time zone; add one, e.g. +00:00", param_hint=option)
    return value


def _parse_expiry(text: str) -> float | dt.datetime:
    try:
        return float(text)
    except ValueError:
        return _parse_time("--expires", text)


@main.command(epilog=_EXIT_CODES)
@_json_option
@_pass_options
def contracts(options: _Options, as_json: bool) -> None:
    """List the contracts this client knows: signatures, queues, time bounds and fingerprints."""
    if as_json:
        listing = [
            {
                **item.summary(),
                "arguments_schema": item.arguments_schema(),
                "result_schema": item.result_schema(),
            }
            for item in options.catalog
        ]
        click.echo(json.dumps({"contracts": listing}, indent=2))
        return
    for item in options.catalog:
        click.echo(f"{item.name}{item.signature_text()}")
        click.echo(
            f"    queue={item.queue}  timeout={item.timeout:g}s  idempotent={'yes' if item.idempotent else 'no'}"
            f"  fingerprint={item.fingerprint}"
        )
        if item.description:
            click.echo(f"    {item.description.splitlines()[0]}")


def _difference_note(known: Contract[..., Any] | None, worker: WorkerInfo) -> str:
    differences = None if known is None else worker.differences(known)
    if known is None or differences is None or worker.contracts.get(known.name) == known.fingerprint:
        return ""
    if differences:
        return f"  (differs from client: {'; '.join(differences)})"
    risks = worker.risks(known)
    return f"  (another version, compatible; {'; '.join(risks)})" if risks else "  (another version, compatible)"


@main.command(epilog=_EXIT_CODES)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Seconds to collect replies from workers.",
)
@_json_option
@_pass_options
def workers(options: _Options, timeout: float, as_json: bool) -> None:
    """Ask the running workers what they serve: host, queues, contract versions and fingerprints.

    Flags each contract of this client that no worker serves as this client calls it: not
    implemented, implemented with a breaking difference, or on a queue no worker consumes.
    A compatible difference (as `task-contracts diff` says, e.g. a new optional parameter) is a
    WARNING naming the calls at risk (those that pass the new parameter), not a failure.
    Ends with status 6 when any contract is flagged, so it can serve as a deployment check.
    """
    with options.client() as client:
        try:
            found = client.workers(timeout=timeout)
        except TaskError as error:
            _fail(error, as_json)
    problems = contract_problems(options.catalog, found)
    warnings = contract_warnings(options.catalog, found)
    if as_json:
        report = {
            "workers": [
                {
                    "hostname": w.hostname,
                    "queues": list(w.queues),
                    "contracts": dict(w.contracts),
                    "versions": {name: list(found) for name, found in w.versions.items()},
                }
                for w in found
            ],
            "problems": problems,
            "warnings": warnings,
        }
        click.echo(json.dumps(report, indent=2))
    else:
        if not found:
            click.echo(f"no worker replied within {timeout:g} s")
        for worker in found:
            click.echo(f"{worker.hostname}  queues: {', '.join(worker.queues) or '-'}")
            served = ", ".join(f"{name} v{'/v'.join(map(str, nums))}" for name, nums in sorted(worker.versions.items()))
            click.echo(f"  versions: {served or '-'}")
            for name, fingerprint in sorted(worker.contracts.items()):
                click.echo(f"    {name}  {fingerprint}{_difference_note(options.catalog.get(name), worker)}")
        for name, reason in problems.items():
            click.echo(f"NOT SERVED  {name}: {reason}", err=True)
        for name, reason in warnings.items():
            click.echo(f"WARNING  {name}: {reason}", err=True)
    if problems:
        sys.exit(EXIT_CONTRACT)


# -- helpers -----------------------------------------------------------------------
def _find_contract(catalog: ContractCatalog, name: str) -> Contract[..., Any]:
    found = catalog.get(name)
    if found is not None:
        return found
    matches = [item for item in catalog if item.name.rsplit(".", 1)[-1] == name]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(catalog.names())
    if matches:
        raise click.UsageError(f"{name!r} is ambiguous: {', '.join(m.name for m in matches)}")
    raise click.UsageError(f"no contract named {name!r}; known: {known}")


def _parse_arguments(
    item: Contract[..., Any], args: Sequence[str], params: Sequence[str]
) -> tuple[list[Any], dict[str, Any]]:
    properties = item.arguments_schema().get("properties", {})
    positional_names = [p.name for p in item.parameters if p.kind is p.POSITIONAL_OR_KEYWORD]
    if len(args) > len(positional_names):
        raise click.UsageError(
            f"{item.name} takes {len(positional_names)} positional arguments "
            f"({', '.join(positional_names) or 'none'}) but {len(args)} were given"
        )
    positional = [_parse_value(properties.get(n, {}), text) for n, text in zip(positional_names, args, strict=False)]
    named: dict[str, Any] = {}
    for pair in params:
        key, sep, text = pair.partition("=")
        if not sep or key not in properties:
            raise click.UsageError(f"--param {pair!r}: expected NAME=VALUE with NAME one of {', '.join(properties)}")
        named[key] = _parse_value(properties[key], text)
    return positional, named


def _parse_value(schema: dict[str, Any], text: str) -> Any:
    if schema.get("type") == "string":
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text  # validation against the contract then names the parameter and the problem


def _wait(handle: TaskHandle[Any], timeout: float, show_progress: bool) -> Any:
    if not show_progress:
        return handle.result(timeout=timeout)
    display = ProgressDisplay(sys.stderr, terminal=sys.stderr.isatty())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(handle.result, timeout)
        try:
            while True:
                try:
                    return waiting.result(timeout=_REFRESH)
                except concurrent.futures.TimeoutError:
                    display.show(handle.progress)
        finally:
            display.close()


def _emit(as_json: bool, payload: dict[str, Any], plain: Any) -> None:
    if as_json:
        click.echo(json.dumps(payload))
    elif isinstance(plain, str):
        click.echo(plain)
    else:
        click.echo(json.dumps(plain, ensure_ascii=False))


def _fail(error: TaskError, as_json: bool) -> NoReturn:
    status, code = _classify(error)
    message = str(error)
    if as_json:
        details: dict[str, Any] = {"type": type(error).__name__, "message": message}
        if isinstance(error, TaskFailed):
            details.update(remote_type=error.remote_type, remote_message=error.remote_message)
        if isinstance(error, InvalidArguments):
            details["problems"] = list(error.problems)
        click.echo(
            json.dumps({"task_id": error.task_id, "contract": error.contract, "status": status, "error": details})
        )
    if isinstance(error, TaskTimeout):
        message = f"{error.contract or 'task'} {error.task_id}: no result within {error.timeout:g} s; "
        message += f"it may still run: task-client result {error.task_id}"
    click.echo(f"task-client: {message}", err=True)
    sys.exit(code)


def _classify(error: TaskError) -> tuple[str, int]:
    if isinstance(error, TaskExpired):
        return "EXPIRED", EXIT_REVOKED
    if isinstance(error, TaskCancelled):
        return "REVOKED", EXIT_REVOKED
    if isinstance(error, InvalidArguments):
        return "INVALID_ARGUMENTS", EXIT_USAGE
    if isinstance(error, TaskFailed):
        return "FAILURE", EXIT_TASK_FAILED
    if isinstance(error, TaskTimeout):
        return "TIMEOUT", EXIT_TIMEOUT
    if isinstance(error, BrokerUnavailable):
        return "BROKER_UNAVAILABLE", EXIT_BROKER_UNAVAILABLE
    if isinstance(error, (ContractMismatch, UnknownTask)):
        return "CONTRACT_MISMATCH" if isinstance(error, ContractMismatch) else "UNKNOWN_TASK", EXIT_CONTRACT
    return "ERROR", 1
