"""Run policies declared with a contract: checked at import, summarised, never part of the fingerprint."""

from __future__ import annotations

import pytest

from task_contracts import ContractDeclarationError, DeclaredError, Retry, contract


class Declined(DeclaredError):
    """A refusal the contract declares."""


def test_a_full_declaration_is_kept_and_summarised() -> None:
    policy = Retry(on=(Declined, ConnectionError), attempts=4, backoff=0.5, max_delay=3, jitter=False)

    @contract(
        name="shop.pay",
        idempotent=True,
        retry=policy,
        raises=(Declined,),
        interruptible=True,
        rate_limit="10/s",
        concurrency=3,
    )
    def pay(amount: int) -> int: ...

    assert (pay.retry, pay.raises, pay.interruptible, pay.rate_limit, pay.concurrency) == (
        policy,
        (Declined,),
        True,
        "10/s",
        3,
    )
    assert pay.declared_error("Declined") is Declined and pay.declared_error("Other") is None
    summary = pay.summary()
    assert summary["retry"]["on"] == ["Declined", "ConnectionError"] and summary["concurrency"] == 3

    @contract(name="shop.pay", idempotent=True)
    def plain(amount: int) -> int: ...

    assert plain.fingerprint == pay.fingerprint  # policies do not change the wire signature
    assert "retry" not in plain.summary()


def test_a_retry_policy_needs_an_idempotent_contract() -> None:
    with pytest.raises(ContractDeclarationError, match="idempotent=True"):

        @contract(name="shop.charge", retry=Retry(on=(Declined,)))
        def charge(amount: int) -> int: ...


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"raises": (ValueError,)}, "not a subclass of task_contracts.DeclaredError"),
        ({"rate_limit": "ten a second"}, "rate_limit"),
        ({"concurrency": 0}, "concurrency must be a positive int"),
        ({"concurrency": True}, "concurrency must be a positive int"),
    ],
)
def test_bad_policies_fail_at_import(options: dict[str, object], problem: str) -> None:
    with pytest.raises(ContractDeclarationError, match=problem):
        contract(name="shop.refund", **options)(lambda amount: amount)  # type: ignore[arg-type]


def test_a_declared_error_carries_a_message_only() -> None:
    class WithFields(DeclaredError):
        def __init__(self, balance: int) -> None:
            super().__init__(f"balance {balance}")

    with pytest.raises(ContractDeclarationError, match="must not override __init__"):

        @contract(name="shop.refund", raises=(WithFields,))
        def refund(amount: int) -> int: ...


def test_retry_policy_checks_and_delays() -> None:
    with pytest.raises(TypeError, match="exception classes"):
        Retry(on=(int,))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="at least 2"):
        Retry(on=(Declined,), attempts=1)
    steady = Retry(on=(Declined,), attempts=5, backoff=1.0, max_delay=3.0, jitter=False)
    assert [steady.delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 3.0, 3.0]
    jittered = Retry(on=(Declined,), backoff=1.0, max_delay=3.0)
    assert all(0 <= jittered.delay(3) <= 3.0 for _ in range(50))
    assert steady.applies_to(Declined()) and not steady.applies_to(ValueError())
