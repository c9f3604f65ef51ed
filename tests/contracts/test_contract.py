from __future__ import annotations

import pydantic
import pytest

from task_contracts import (
    CATALOG,
    ArgumentsError,
    ContractCatalog,
    ContractDeclarationError,
    ResultError,
    contract,
    math,
)


class Point(pydantic.BaseModel):
    x: int
    y: int


@contract(name="geo.shift", queue="geo", timeout=5)
def shift(point: Point, by: int = 1, *, scale: float = 1.0) -> Point:
    """Move a point."""
    ...


def test_contract_declares_wire_name_queue_bound_and_idempotency() -> None:
    assert (math.add.name, math.add.queue, math.add.timeout, math.add.idempotent) == (
        "math.add",
        "math",
        10.0,
        True,
    )
    assert math.add.signature_text() == "(x: int, y: int) -> int"
    assert math.add.description == "Return x + y."
    assert shift.signature_text() == "(point: Point, by: int = 1, *, scale: float = 1.0) -> Point"


def test_encode_arguments_gives_wire_args_and_keyword_only_kwargs() -> None:
    assert math.add.encode_arguments((4, 7), {}) == ([4, 7], {})
    assert math.add.encode_arguments((), {"y": 7, "x": 4}) == ([4, 7], {})
    # Only what the caller gave travels: the worker fills in its own defaults.
    assert shift.encode_arguments((Point(x=1, y=2),), {"scale": 2}) == ([{"x": 1, "y": 2}], {"scale": 2.0})
    assert shift.encode_arguments((Point(x=1, y=2), 1), {}) == ([{"x": 1, "y": 2}, 1], {})
    assert shift.encode_arguments((Point(x=1, y=2),), {}) == ([{"x": 1, "y": 2}], {})


def test_validate_arguments_returns_typed_values() -> None:
    values = shift.validate_arguments(({"x": 1, "y": 2}, 3), {})
    assert values == {"point": Point(x=1, y=2), "by": 3, "scale": 1.0}
    assert isinstance(values["point"], Point)


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        (("a", 7), {}, "x: Input should be a valid integer"),
        ((1, 2, 3), {}, "takes 2 positional arguments but 3 were given"),
        ((1,), {}, "y: Field required"),
        ((1, 2), {"z": 3}, "z: Extra inputs are not permitted"),
        ((1,), {"x": 2}, "x: given both by position and by name"),
    ],
)
def test_bad_arguments_name_the_problem(args: tuple[object, ...], kwargs: dict[str, object], expected: str) -> None:
    with pytest.raises(ArgumentsError) as caught:
        math.add.encode_arguments(args, kwargs)
    assert expected in str(caught.value)
    assert caught.value.contract_name == "math.add"


def test_results_are_validated_both_ways() -> None:
    assert math.add.encode_result(11) == 11
    assert shift.encode_result(Point(x=1, y=2)) == {"x": 1, "y": 2}
    assert shift.decode_result({"x": 1, "y": 2}) == Point(x=1, y=2)
    with pytest.raises(ResultError, match="math.add"):
        math.add.decode_result("eleven")


def test_json_schemas_come_from_the_declaration() -> None:
    schema = math.xsum.arguments_schema()
    assert schema["properties"]["numbers"] == {"items": {"type": "integer"}, "title": "Numbers", "type": "array"}
    assert schema["required"] == ["numbers"] and schema["additionalProperties"] is False
    assert math.xsum.result_schema() == {"type": "integer"}


def test_fingerprint_is_stable_and_changes_with_the_signature() -> None:
    @contract(name="math.add", queue="math", timeout=10)
    def same(x: int, y: int) -> int: ...

    @contract(name="math.add", queue="math", timeout=10)
    def other(x: int, y: float) -> int: ...

    assert same.fingerprint == math.add.fingerprint
    assert other.fingerprint != math.add.fingerprint
    assert len(math.add.fingerprint) == 16


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (lambda: contract(name="Add")(lambda x: x), "dotted lowercase"),
        (lambda: contract(name="m.f", timeout=0)(_typed), "timeout must be positive"),
        (lambda: contract(name="m.f")(_untyped_result), "result type is not annotated"),
        (lambda: contract(name="m.f")(_star_args), "named parameters only"),
        (lambda: contract(name="m.f")(_unannotated_param), "has no type annotation"),
    ],
)
def test_unusable_declarations_fail_at_import(declare: object, message: str) -> None:
    with pytest.raises(ContractDeclarationError, match=message):
        declare()  # type: ignore[operator]


def _typed(x: int) -> int: ...
def _untyped_result(x: int): ...  # type: ignore[no-untyped-def]
def _star_args(*xs: int) -> int: ...
def _unannotated_param(x) -> int: ...  # type: ignore[no-untyped-def]


def test_catalog_refuses_duplicate_names_and_lists_queues() -> None:
    with pytest.raises(ContractDeclarationError, match="math.add"):
        ContractCatalog(math.add, math.add)
    # Every contract of the contract modules, in declaration order: no second listing.
    assert CATALOG.names() == ["math.add", "math.mul", "math.xsum", "math.div", "math.stats", "reports.count_to"]
    assert CATALOG.queues() == ["math", "reports"]
    assert CATALOG.get("math.add") is math.add and CATALOG.get("nope") is None


def test_a_result_is_kept_ten_timeouts_and_at_least_five_minutes_unless_the_contract_says() -> None:
    @contract(name="slow.report", timeout=120)
    def report() -> int: ...

    @contract(name="fast.ping", timeout=1, result_ttl=30)
    def ping() -> int: ...

    assert math.add.result_ttl == 300.0  # 10 x 10 s is below the five-minute floor
    assert report.result_ttl == 1200.0
    assert ping.result_ttl == 30.0


def test_a_result_lifetime_below_one_second_is_refused_at_declaration() -> None:
    with pytest.raises(ContractDeclarationError, match="result_ttl"):

        @contract(name="bad.ttl", result_ttl=0.5)
        def bad() -> int: ...


def test_contracts_are_cpu_bound_unless_declared_otherwise() -> None:
    assert shift.cpu_bound is True
    assert math.add.cpu_bound is False


def test_running_on_the_event_loop_is_declared_by_the_author_only_for_light_contracts() -> None:
    assert shift.on_event_loop is False  # never by default
    assert math.add.on_event_loop is True  # pure arithmetic: its author's declaration
    assert math.mul.on_event_loop is False
    with pytest.raises(ContractDeclarationError, match="on_event_loop needs cpu_bound=False"):

        @contract(name="bad.loop", on_event_loop=True)
        def bad() -> int: ...


def test_the_event_loop_declaration_is_no_part_of_the_wire_shape_or_fingerprint() -> None:
    def stub(x: int, y: int) -> int:
        """Return the sum of x and y."""

    kwargs = {"name": "loop.add", "timeout": 10, "idempotent": True, "cpu_bound": False}
    on_threads = contract(**kwargs)(stub)  # type: ignore[arg-type]
    on_the_loop = contract(**kwargs, on_event_loop=True)(stub)  # type: ignore[arg-type]
    assert on_the_loop.fingerprint == on_threads.fingerprint
    assert on_the_loop.shape == on_threads.shape
    assert on_the_loop.served_shape() == on_threads.served_shape()
    assert on_the_loop.summary() == {**on_threads.summary(), "on_event_loop": True}  # exported, for diff
    assert "on_event_loop" not in on_threads.summary()
