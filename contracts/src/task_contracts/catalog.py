"""The contracts this deployment serves. A contract takes effect once it is listed here."""

from __future__ import annotations

from . import diagnostics, math, reports
from ._catalog import ContractCatalog

CATALOG = ContractCatalog(
    math.add,
    math.mul,
    math.xsum,
    math.div,
    reports.count_to,
    diagnostics.sleep,
    diagnostics.hold,
    diagnostics.hold_once,
)
