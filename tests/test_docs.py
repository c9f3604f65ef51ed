"""The docs say what the code does: facts a new team relies on, checked against the code."""

from __future__ import annotations

import re

import pytest

import task_client
import task_contracts
import task_server
from task_contracts import wire

from .conftest import REPO_ROOT

DOCS = REPO_ROOT / "docs"


def text(name: str) -> str:
    return (DOCS / name).read_text()


def test_the_accepted_url_schemes_are_the_ones_concepts_names() -> None:
    configuration = text("concepts.md").split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for scheme in ("redis://", "rediss://", "sentinel://", "amqp://", "amqps://"):
        assert f"`{scheme}`" in configuration, scheme
    assert "Only `redis://`" not in configuration


def test_the_rabbitmq_table_names_the_shape_header() -> None:
    rabbit = text("wire.md").split("## On RabbitMQ", 1)[1]
    assert f"`{wire.SHAPE_HEADER}` optional" in rabbit
    assert "contract_fingerprint" not in text("wire.md")


def test_wheel_names_in_the_docs_carry_the_current_version() -> None:
    versions = {task_client.__name__: _version("client"), "task_contracts": _version("contracts")}
    for path in [*DOCS.glob("*.md"), REPO_ROOT / "README.md"]:
        for package, version in re.findall(r"(task_\w+)-(\d+\.\d+\.\d+)-py3", path.read_text()):
            assert version == versions.get(package, version), f"{path.name}: {package}-{version}"


def _version(member: str) -> str:
    found = re.search(r'^version = "([^"]+)"', (REPO_ROOT / member / "pyproject.toml").read_text(), re.MULTILINE)
    assert found
    return found.group(1)


def test_wire_says_exc_message_is_a_list_and_how_to_poll_without_subscribing() -> None:
    page = text("wire.md")
    assert "`exc_message` is a **list**" in page
    assert "php-redis" in page and "poll" in page


@pytest.mark.parametrize(
    ("page", "module"),
    [("client.md", task_client), ("contracts.md", task_contracts), ("server.md", task_server)],
)
def test_each_reference_page_reads_on_github_and_names_the_public_api(page: str, module: object) -> None:
    source = (DOCS / "reference" / page).read_text()
    prose = [line for line in source.splitlines() if line.strip() and not line.startswith((":::", "#"))]
    assert len(prose) >= 5, f"reference/{page} shows nothing but mkdocstrings directives on GitHub"
    exported = {name for name in module.__all__ if name[0].isupper() or name in ("contract", "remote")}
    named = set(re.findall(r"`(\w+)", source))
    important = exported - {"CeleryUrl", "SentinelAddress", "DEFAULT_BROKER_URL", "CATALOG", "ServerError"}
    missing = sorted(important - named)
    assert len(missing) <= len(important) // 3, f"reference/{page} summary misses {missing}"
    assert f"::: {module.__name__}" in source  # the site still renders every docstring
