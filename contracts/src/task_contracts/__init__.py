"""Task contracts: each remote task declared once, shared by worker and client."""

from . import diagnostics, math
from ._catalog import ContractCatalog
from ._connection import (
    DEFAULT_BROKER_URL,
    ConnectionConfigError,
    ConnectionUrls,
    redact_url,
    resolve_urls,
)
from ._contract import (
    ArgumentsError,
    Contract,
    ContractDeclarationError,
    ResultError,
    contract,
)
from .catalog import CATALOG

__all__ = [
    "CATALOG",
    "DEFAULT_BROKER_URL",
    "ArgumentsError",
    "ConnectionConfigError",
    "ConnectionUrls",
    "Contract",
    "ContractCatalog",
    "ContractDeclarationError",
    "ResultError",
    "contract",
    "diagnostics",
    "math",
    "redact_url",
    "resolve_urls",
]
