"""`task-contracts`: export the contracts for producers and consumers in other languages.

argparse, not click: task-contracts depends on pydantic only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from ._catalog import load_catalog
from ._diff import ExportError, diff_exports, load_export
from ._export import export_contracts

DEFAULT_CATALOG = "task_contracts.catalog:CATALOG"
#: The languages `generate` writes callers in (task_contracts._generate.LANGUAGES).
LANGUAGE_NAMES = ("go", "php", "typescript")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `task-contracts` command; returns the exit status."""
    try:
        status = _run(argv)
        sys.stdout.flush()  # here, so that a closed pipe is reported here and not at exit
    except BrokenPipeError:
        # The reader went away (`task-contracts diff --json | head`): stop quietly, as `cat` does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return status


def _run(argv: Sequence[str] | None) -> int:
    parser = _parser()
    options = parser.parse_args(argv)
    if options.command is None:
        parser.print_help()
        return 2
    if options.command == "diff":
        return _diff(parser, options.old, options.new, options.as_json)
    if options.command == "generate":
        return _generate(parser, options)
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
    diff = commands.add_parser(
        "diff",
        help="classify every change between two exports; exit 1 if one is breaking",
        description=(
            "Compare two exports of a catalog (directories written by `task-contracts export`, or built "
            "task-contracts wheels) and print each change with its class: compatible, or breaking and for "
            "whom (old clients calling new workers, new clients calling old workers, messages queued before "
            "the deploy). Exit status 0 when every change is compatible, 1 when one is breaking, 2 on a "
            "usage error. The rules are the table in the compatibility documentation."
        ),
    )
    diff.add_argument("old", metavar="OLD", help="the export (or wheel) deployed now")
    diff.add_argument("new", metavar="NEW", help="the export (or wheel) about to be deployed")
    diff.add_argument("--json", dest="as_json", action="store_true", help="print the changes as JSON")
    generate = commands.add_parser(
        "generate",
        help="write a typed caller in Go, PHP or TypeScript",
        description=(
            "Write a typed caller for every contract of the catalog (or of an export directory written by "
            "`task-contracts export`): the language's runtime and one function per contract, with the "
            "contract's parameter and result types, its docstring, and checks of the constraints the "
            "language's types cannot say. The same input gives byte-identical files."
        ),
    )
    generate.add_argument("language", choices=LANGUAGE_NAMES, metavar="{" + ",".join(LANGUAGE_NAMES) + "}")
    generate.add_argument("--out", required=True, metavar="DIR", help="output directory")
    source = generate.add_mutually_exclusive_group()
    source.add_argument(
        "--catalog",
        default=DEFAULT_CATALOG,
        metavar="MODULE:NAME",
        help="the ContractCatalog to generate for (default: %(default)s)",
    )
    source.add_argument("--from", dest="export_dir", metavar="EXPORT_DIR", help="an export directory instead")
    generate.add_argument(
        "--go-module", default="example.com/tasks", help="Go module path (go.mod); its last element names the package"
    )
    return parser


def _generate(parser: argparse.ArgumentParser, options: argparse.Namespace) -> int:
    # Imported here: the generators are only needed by this command.
    from ._errors import GenerateError
    from ._generate import Options, generate

    try:
        catalog = None if options.export_dir else load_catalog(options.catalog)
    except (ImportError, AttributeError, ValueError, TypeError) as error:
        parser.error(f"--catalog {options.catalog}: {error}")
    try:
        written = generate(
            options.language,
            options.out,
            catalog=catalog,
            export_dir=options.export_dir,
            options=Options(go_module=options.go_module),
        )
    except GenerateError as error:
        parser.error(f"generate: {error}")
    for path in written:
        print(path)
    return 0


def _diff(parser: argparse.ArgumentParser, old: str, new: str, as_json: bool) -> int:
    try:
        changes = diff_exports(load_export(old), load_export(new))
    except (ExportError, OSError, KeyError, ValueError) as error:
        parser.error(f"diff: {error}")
    breaking = [change for change in changes if not change.rule.compatible]
    if as_json:
        print(json.dumps({"compatible": not breaking, "changes": [c.as_json() for c in changes]}, indent=2))
    else:
        for change in changes:
            print(change)
        print(f"{_count(len(changes), 'change')}, {len(breaking)} breaking" if changes else "no changes")
    return 1 if breaking else 0


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


if __name__ == "__main__":
    sys.exit(main())
