"""The client's defaults are the safe ones: JSON only, bounded waits, passwords never shown."""

from __future__ import annotations

import pytest

from task_client import ClientSettings, TaskClient
from task_contracts import resolve_urls

URL = "redis://alice:s3cret-client@127.0.0.1:9/0"


def test_the_client_publishes_and_accepts_json_only() -> None:
    with TaskClient(URL) as client:
        conf = client._runtime.producer._app.conf
        assert conf.task_serializer == "json"
        assert conf.accept_content == ["json"]
        assert conf.result_accept_content == ["json"]


def test_every_network_wait_has_a_bound() -> None:
    with TaskClient(URL) as client:
        options = client._runtime.producer._app.conf.broker_transport_options
        assert options["socket_connect_timeout"] == client.settings.connect_timeout == 1.0
        assert options["socket_timeout"] == client.settings.socket_timeout == 2.0


def test_reprs_never_show_the_password() -> None:
    with TaskClient(URL, "rediss://bob:s3cret-backend@127.0.0.1:9/1?ssl_cert_reqs=required") as client:
        shown = " ".join([repr(client), repr(client.settings), repr(client.add), repr(client.add.handle("id"))])
    assert "s3cret" not in shown
    assert "alice:***@" in shown and "bob:***@" in shown


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("connect_timeout", 0, "connect_timeout must be a positive number of seconds"),
        ("socket_timeout", -1.0, "socket_timeout must be a positive number of seconds"),
        ("publish_retries", -1, "publish_retries must be 0 or more"),
    ],
)
def test_settings_refuse_bounds_that_would_mean_forever(field: str, value: float, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ClientSettings(urls=resolve_urls(URL), **{field: value})
