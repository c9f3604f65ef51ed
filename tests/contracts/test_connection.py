from __future__ import annotations

import pytest

from task_contracts import ConnectionConfigError, redact_url, resolve_urls


def test_defaults_when_nothing_is_given() -> None:
    urls = resolve_urls(environ={})
    assert urls.broker_url == "redis://127.0.0.1:6379/0"
    assert urls.result_backend == urls.broker_url


def test_argument_beats_environment_which_beats_default() -> None:
    env = {"TASK_BROKER_URL": "redis://env:1/0", "TASK_RESULT_BACKEND": "redis://env:2/1"}
    assert resolve_urls(environ=env).broker_url == "redis://env:1/0"
    assert resolve_urls(environ=env).result_backend == "redis://env:2/1"
    assert resolve_urls("redis://arg:3/0", environ=env).broker_url == "redis://arg:3/0"


def test_backend_defaults_to_the_broker() -> None:
    assert resolve_urls("rediss://h:6380/2", environ={}).result_backend == "rediss://h:6380/2"


def test_unsupported_scheme_is_a_clear_error_without_password() -> None:
    with pytest.raises(ConnectionConfigError, match="amqp") as caught:
        resolve_urls("amqp://u:secret@h//", environ={})
    assert "secret" not in str(caught.value)


def test_redaction_hides_passwords_only() -> None:
    assert redact_url("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact_url("rediss://:s3cret@host/0") == "rediss://:***@host/0"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"
    assert "s3cret" not in repr(resolve_urls("redis://:s3cret@h/0", environ={}))
