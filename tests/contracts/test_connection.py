from __future__ import annotations

import pytest

from task_contracts import (
    ConnectionConfigError,
    SentinelAddress,
    celery_url,
    redact_url,
    resolve_urls,
    sentinel_address,
)


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
    with pytest.raises(
        ConnectionConfigError, match="'kafka'; supported: redis, rediss, sentinel, amqp, amqps"
    ) as caught:
        resolve_urls("kafka://u:secret@h/", environ={})
    assert "secret" not in str(caught.value)


def test_rabbitmq_is_a_broker_with_a_redis_result_backend() -> None:
    urls = resolve_urls("amqp://u:secret@h:5672/vhost", "redis://h:6379/1", environ={})
    assert urls.broker_is_amqp and urls.result_backend == "redis://h:6379/1"
    assert resolve_urls("amqps://h//", environ={"TASK_RESULT_BACKEND": "rediss://h/0"}).broker_is_amqp
    assert not resolve_urls("redis://h/0", environ={}).broker_is_amqp


def test_rabbitmq_without_a_result_backend_is_a_clear_error() -> None:
    with pytest.raises(
        ConnectionConfigError, match="RabbitMQ, which cannot hold results: set the result backend"
    ) as caught:
        resolve_urls("amqp://u:secret@h//", environ={})
    assert "secret" not in str(caught.value)


def test_rabbitmq_as_the_result_backend_is_a_clear_error() -> None:
    with pytest.raises(ConnectionConfigError, match="result backend URL 'amqp://u:\\*\\*\\*@h/' is RabbitMQ"):
        resolve_urls("amqp://u:secret@h//", "amqp://u:secret@h/", environ={})


SENTINELS = "sentinel://:s3cret@h1:26379/2;sentinel://h2:26380;sentinel://h3?master_name=mymaster"


def test_a_sentinel_url_names_every_sentinel_and_the_master() -> None:
    urls = resolve_urls(SENTINELS, environ={})
    assert urls.result_backend == SENTINELS and not urls.broker_is_amqp
    address = sentinel_address(SENTINELS)
    assert address == SentinelAddress((("h1", 26379), ("h2", 26380), ("h3", 26379)), "mymaster", 2, None, "s3cret")
    assert "s3cret" not in repr(address)
    converted = celery_url(SENTINELS)
    assert converted.url == "sentinel://:s3cret@h1:26379/2;sentinel://h2:26380;sentinel://h3"
    assert converted.transport_options == {"master_name": "mymaster"}
    assert celery_url("redis://h/0").transport_options == {}


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("sentinel://h1:26379;sentinel://h2:26379/0", "names no Sentinel master"),
        ("sentinel://h1/0?master_name=a;sentinel://h2?master_name=b", "names more than one Sentinel master"),
        ("sentinel://h1;redis://h2/0?master_name=m", "each ';'-separated part must be sentinel://host:port"),
        ("sentinel://:pw@h1/x?master_name=m", "the database 'x' is not a number"),
    ],
)
def test_a_broken_sentinel_url_is_a_clear_error(url: str, problem: str) -> None:
    for role, arguments in (("broker", (url,)), ("result backend", ("redis://h/0", url))):
        with pytest.raises(ConnectionConfigError, match=f"^{role} URL .*{problem}") as caught:
            resolve_urls(*arguments, environ={})
        assert "pw" not in str(caught.value)


def test_redaction_hides_passwords_only() -> None:
    assert redact_url("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact_url("rediss://:s3cret@host/0") == "rediss://:***@host/0"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"
    assert "s3cret" not in repr(resolve_urls("redis://:s3cret@h/0", environ={}))
    assert redact_url(SENTINELS) == "sentinel://:***@h1:26379/2;sentinel://h2:26380;sentinel://h3?master_name=mymaster"
    assert redact_url("amqp://guest:guest@h:5672//") == "amqp://guest:***@h:5672//"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "rediss://h:6380/0?ssl_cert_req=required",
            "unknown query option 'ssl_cert_req'; did you mean 'ssl_cert_reqs'?",
        ),
        ("redis://h:6379/0?socket_timout=1", "unknown query option 'socket_timout'; did you mean 'socket_timeout'?"),
        ("redis://h:6379/0?master_name=m", "unknown query option 'master_name'"),  # Sentinel's only
        ("redis://h:6379/0?ssl_cert_reqs=required", "the TLS option 'ssl_cert_reqs' but the scheme redis://"),
        ("sentinel://h1:26379;sentinel://h2:26379?colour=blue/0?master_name=m", "unknown query option 'colour'"),
    ],
)
def test_a_query_option_no_layer_understands_is_refused_naming_it(url: str, expected: str) -> None:
    with pytest.raises(ConnectionConfigError, match=expected.replace("?", r"\?").replace(".", r"\.")):
        resolve_urls(url, environ={})
    with pytest.raises(ConnectionConfigError, match="result backend URL"):
        resolve_urls("redis://h:6379/0", url, environ={})


def test_the_documented_query_options_are_accepted() -> None:
    for url in (
        "rediss://h:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/ssl/ca.pem&ssl_check_hostname=true",
        "redis://h:6379/0?socket_timeout=2&health_check_interval=10&client_name=billing",
        "sentinel://h1:26379;sentinel://h2:26379/0?master_name=mymaster&socket_timeout=1",
    ):
        assert resolve_urls(url, environ={}).broker_url == url
