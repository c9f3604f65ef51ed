"""Task contracts: each remote task declared once, shared by worker and client."""

from . import math, reports, wire
from ._asyncapi import asyncapi_document
from ._catalog import ContractCatalog, load_catalog
from ._connection import (
    DEFAULT_BROKER_URL,
    CeleryUrl,
    ConnectionConfigError,
    ConnectionUrls,
    SentinelAddress,
    celery_url,
    redact_url,
    resolve_urls,
    sentinel_address,
)
from ._contract import Contract, contract, wire_name
from ._errors import ArgumentsError, ContractDeclarationError, ContractError, IncompatibleCall, ResultError
from ._export import export_contracts
from ._policy import DeclaredError, Retry
from ._schedule import Crontab, Schedule, schedule_problems
from ._schema import arguments_document, result_document
from .catalog import CATALOG

__all__ = [
    "CATALOG",
    "DEFAULT_BROKER_URL",
    "ArgumentsError",
    "CeleryUrl",
    "ConnectionConfigError",
    "ConnectionUrls",
    "Contract",
    "ContractCatalog",
    "ContractDeclarationError",
    "ContractError",
    "IncompatibleCall",
    "Crontab",
    "DeclaredError",
    "ResultError",
    "Retry",
    "Schedule",
    "SentinelAddress",
    "arguments_document",
    "asyncapi_document",
    "celery_url",
    "contract",
    "export_contracts",
    "load_catalog",
    "math",
    "redact_url",
    "reports",
    "resolve_urls",
    "result_document",
    "schedule_problems",
    "sentinel_address",
    "wire",
    "wire_name",
]
