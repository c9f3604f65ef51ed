"""`task-contracts`: export the contracts for producers and consumers in other languages.

argparse, not click: task-contracts depends on pydantic only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._catalog import load_catalog
from ._export import export_contracts

DEFAULT_CATALOG = "task_contracts.catalog:CATALOG"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `task-contracts` command; returns the exit status."""
    parser = _parser()
    options = parser.parse_args(argv)
    if options.command is None:
        parser.print_help()
        return 2
    try:
        catalog = load_catalog(options.catalog)
    except (ImportError, AttributeError, ValueError, TypeError) as error:
        parser.error(f"--catalog {options.catalog}: {error}")
    written = export_contracts(options.directory, catalog)
    for path in written:
        print(path)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="task-contracts",
        description="Task contracts shared by task-server and task-client.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    export = commands.add_parser(
        "export",
        help="write JSON Schemas and an AsyncAPI 3.0 document for every contract",
        description=(
            "Write, for every contract of the catalog, <name>.arguments.schema.json and "
            "<name>.result.schema.json (JSON Schema draft 2020-12), plus asyncapi.json (AsyncAPI 3.0: "
            "queues, the Celery protocol-v2 envelope on Redis, each task's payload, the result records) "
            "and contracts.json (names, queues, fingerprints, file names). Existing files are overwritten."
        ),
    )
    export.add_argument(
        "directory",
        nargs="?",
        default="contracts-export",
        metavar="DIR",
        help="output directory (default: %(default)s)",
    )
    export.add_argument(
        "--catalog",
        default=DEFAULT_CATALOG,
        metavar="MODULE:NAME",
        help="the ContractCatalog to export (default: %(default)s)",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
