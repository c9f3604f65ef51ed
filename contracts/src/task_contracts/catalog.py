"""The contracts this distribution ships: every contract declared in the modules listed here.

A new contract in `math.py` or `reports.py` is picked up with no second listing; a new module of
contracts is added to `from_modules` below. Teams serve their own catalogs with `--catalog`.
"""

from __future__ import annotations

from . import math, reports
from ._catalog import ContractCatalog

CATALOG = ContractCatalog.from_modules(math, reports)
