"""`--remote-control=safe`: a worker refuses the operator's remote-control commands.

Anyone who may PUBLISH on the pidbox channel (a client-role Redis user must, for
`client.workers()` and for stopping a running call) can broadcast Celery's operator commands to
every worker: `shutdown`, `pool_restart`, `pool_grow`/`pool_shrink`, `autoscale`,
`cancel_consumer`, `rate_limit`, `time_limit`, `enable_events`, `objgraph`, `memdump`, ... With
`safe`, a worker refuses them (logged, and an error reply to the sender) and keeps what clients
and read-only inspection need: every `inspect` command but the costly `objgraph`, `memdump` and
`memsample`, and the SDK's control commands (`revoke` and `terminate`, which check cancel tokens
(`_revoke_guard`), `task_contracts`, `task_sdk_cancelled`). A control command Celery adds in a
later release is refused too, until it is listed here.

Each refused command is registered again, through Celery's public registry, as a wrapper that
asks its worker's setting: the registry is one per process, the setting one per app.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from celery.worker import control

from task_contracts.wire import CONTROL_CANCELLED, CONTROL_CONTRACTS

from . import _cancelled_ahead, _control, _revoke_guard  # noqa: F401 - their commands are registered first

logger = logging.getLogger(__name__)

#: Celery config key: "all" (Celery's behaviour) or "safe" (the operator's commands are refused).
REMOTE_CONTROL_SETTING = "task_server_remote_control"

#: Control commands a `safe` worker still obeys: the SDK's (cancelling checks its tokens).
SAFE_CONTROL = frozenset({"revoke", "terminate", "revoke_by_stamped_headers", CONTROL_CONTRACTS, CONTROL_CANCELLED})
#: Inspect commands a `safe` worker refuses: they cost CPU and memory for anyone who asks.
COSTLY_INSPECT = frozenset({"objgraph", "memdump", "memsample"})


def operator_commands() -> list[str]:
    """The registered commands a `safe` worker refuses."""
    return sorted(
        name
        for name, info in control.Panel.meta.items()
        if (info.type == "control" and name not in SAFE_CONTROL) or name in COSTLY_INSPECT
    )


def _guarded(name: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(handler)
    def guarded(state: Any, *args: Any, **kwargs: Any) -> Any:
        if state.app.conf.get(REMOTE_CONTROL_SETTING) != "safe":
            return handler(state, *args, **kwargs)
        logger.warning(
            "refused the remote-control command %r (arguments %.200r): this worker runs with --remote-control=safe",
            name,
            kwargs,
        )
        return control.nok(f"{name} is refused: this worker runs with --remote-control=safe")

    return guarded


def _guard_operator_commands() -> None:
    for name in operator_commands():
        info = control.Panel.meta[name]
        register = control.inspect_command if info.type == "inspect" else control.control_command
        register(
            name=name,
            alias=info.alias,  # an alias would still reach the command unguarded
            args=info.args,
            variadic=info.variadic,
            signature=info.signature,
            help=info.help,
            visible=info.visible,
            default_timeout=info.default_timeout,
        )(_guarded(name, control.Panel.data[name]))


_guard_operator_commands()
