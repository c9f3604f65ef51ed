"""Ask running workers which contracts they serve, and compare with the client's catalog."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from task_contracts import Contract, ContractCatalog, redact_url
from task_contracts.wire import CONTROL_CONTRACTS

from ._errors import BrokerUnavailable
from ._producer import BROKER_ERRORS, Producer
from ._reasons import connection_failure


@dataclass(frozen=True)
class WorkerInfo:
    """What one running worker serves: its node name, the queues it consumes, and the
    contracts it implements (wire name -> fingerprint), with the major versions served of each
    declared name (`{"math.add": (1, 2)}`: `math.add` and `math.add.v2`)."""

    hostname: str
    queues: tuple[str, ...]
    contracts: Mapping[str, str] = field(default_factory=dict)
    versions: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    shapes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def serves(self, name: str, fingerprint: str, queue: str) -> bool:
        """True if this worker implements exactly this fingerprint and consumes its queue."""
        return self.contracts.get(name) == fingerprint and queue in self.queues

    def differences(self, contract: Contract[..., Any]) -> list[str] | None:
        """None if this worker does not implement `contract`; else why it would refuse some of the
        calls this client makes (empty: every valid call runs, even with another fingerprint)."""
        fingerprint = self.contracts.get(contract.name)
        if fingerprint is None:
            return None
        if fingerprint == contract.fingerprint:
            return []
        shape = self.shapes.get(contract.name)
        if shape is None:  # a worker from before shapes: only equality can be judged
            return [f"another fingerprint ({fingerprint}, here {contract.fingerprint})"]
        return contract.problems_on_worker(shape)

    def risks(self, contract: Contract[..., Any]) -> list[str]:
        """Which calls of `contract` this worker would refuse although it serves it compatibly
        (e.g. calls that pass a parameter newer than the worker); empty if none or not served."""
        shape = self.shapes.get(contract.name)
        if shape is None or self.contracts.get(contract.name) in (None, contract.fingerprint):
            return []
        return contract.risks_on_worker(shape)


def ask_workers(producer: Producer, timeout: float) -> list[WorkerInfo]:
    """Broadcast the `task_contracts` control command; collect the replies for `timeout` seconds."""
    broker = redact_url(producer.app.conf.broker_url)
    # On Redis the replies are read with BRPOP, 1 s at a time by default: a shorter `timeout`
    # would still take a second. Polled as often as a tenth of the timeout instead.
    options = {} if producer.settings.urls.broker_is_amqp else {"polling_interval": min(timeout / 10, 0.1)}
    try:
        with producer.app.connection_for_write(transport_options=options) as connection:
            # kombu would otherwise retry a refused connection for several seconds.
            connection.ensure_connection(max_retries=1, interval_start=0.1, interval_step=0.1, interval_max=0.2)
            replies = producer.app.control.broadcast(
                CONTROL_CONTRACTS, reply=True, timeout=timeout, connection=connection
            )
    except BROKER_ERRORS as error:
        raise BrokerUnavailable(
            f"broker {broker} is unavailable: {connection_failure(error, producer.settings)}", url=broker
        ) from None
    return sorted(_parse(replies or []), key=lambda info: info.hostname)


def _parse(replies: Iterable[Mapping[str, Any]]) -> Iterable[WorkerInfo]:
    for reply in replies:
        for hostname, answer in reply.items():
            if not isinstance(answer, dict) or "contracts" not in answer:
                continue  # a worker without the command answers with an error
            served = {name: details for name, details in answer["contracts"].items() if isinstance(details, dict)}
            contracts = {name: str(details.get("fingerprint", "")) for name, details in served.items()}
            shapes = {
                name: details["shape"] for name, details in served.items() if isinstance(details.get("shape"), dict)
            }
            versions: dict[str, list[int]] = {}
            for name, details in served.items():
                # Workers from before major versions send neither: their contracts are version 1.
                versions.setdefault(str(details.get("name", name)), []).append(int(details.get("version", 1)))
            yield WorkerInfo(
                hostname=hostname,
                queues=tuple(answer.get("queues", ())),
                contracts=contracts,
                versions={name: tuple(sorted(found)) for name, found in versions.items()},
                shapes=shapes,
            )


def contract_problems(catalog: ContractCatalog, workers: Iterable[WorkerInfo]) -> dict[str, str]:
    """For each contract whose calls no worker would run as this client makes them: why (wire
    name -> reason). A worker with another fingerprint counts when the difference is compatible."""
    workers = list(workers)
    problems: dict[str, str] = {}
    for item in catalog:
        verdicts = {worker.hostname: worker.differences(item) for worker in workers}
        implementing = [w for w in workers if verdicts[w.hostname] is not None]
        compatible = [w for w in implementing if not verdicts[w.hostname]]
        if any(item.queue in w.queues for w in compatible):
            continue
        if not implementing:
            problems[item.name] = "no worker implements it"
        elif not compatible:
            others = "; ".join(f"{w.hostname}: {', '.join(verdicts[w.hostname] or ())}" for w in implementing)
            problems[item.name] = f"served only with breaking differences: {others}"
        else:
            hosts = ", ".join(w.hostname for w in compatible)
            problems[item.name] = f"implemented by {hosts} but no worker consumes queue {item.queue!r}"
    return problems


def contract_warnings(catalog: ContractCatalog, workers: Iterable[WorkerInfo]) -> dict[str, str]:
    """For each contract served only with compatible differences on its queue: which calls are at
    risk (wire name -> what). A clients-first rollout passes; calls that use what is new may not."""
    workers = list(workers)
    warnings: dict[str, str] = {}
    for item in catalog:
        serving = [w for w in workers if item.queue in w.queues and w.differences(item) == []]
        risks = {w.hostname: w.risks(item) for w in serving}
        if serving and all(risks.values()):
            at_risk = "; ".join(f"{host}: {', '.join(found)}" for host, found in risks.items())
            warnings[item.name] = f"served with compatible differences only: {at_risk}"
    return warnings
