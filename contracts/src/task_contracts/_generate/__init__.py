"""`task-contracts generate`: typed callers in Go, PHP and TypeScript, from a catalog or its export.

Each language has a small runtime written by hand once (`runtime/<language>/`, shipped as package
data and copied as is) and a generated surface: one typed function per contract, the models as
types, and the checks of the constraints that the language's types cannot say. The output depends
only on the export, so the same input gives byte-identical files; a catalog is exported to a
temporary directory first, which keeps `--catalog` and `--from` one path.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from .._catalog import ContractCatalog
from .._export import export_contracts
from . import go, php, typescript
from ._common import Options
from ._model import Catalog, read_export

__all__ = ["LANGUAGES", "Options", "generate"]

#: language -> function giving {relative path: text} for a catalog (runtime files included).
Renderer = Callable[[Catalog, Options], dict[str, str]]
LANGUAGES: dict[str, Renderer] = {"go": go.render, "php": php.render, "typescript": typescript.render}


def generate(
    language: str,
    out: str | Path,
    *,
    catalog: ContractCatalog | None = None,
    export_dir: str | Path | None = None,
    options: Options | None = None,
) -> list[Path]:
    """Write the caller for `language` into `out` from a catalog or an export directory; return the
    paths written, sorted. Files of an earlier generation that are no longer produced are left alone."""
    if (catalog is None) == (export_dir is None):
        raise ValueError("give exactly one of catalog and export_dir")
    if export_dir is None:
        with tempfile.TemporaryDirectory(prefix="task-contracts-generate-") as scratch:
            assert catalog is not None
            export_contracts(scratch, catalog)
            files = LANGUAGES[language](read_export(Path(scratch)), options or Options())
    else:
        files = LANGUAGES[language](read_export(Path(export_dir)), options or Options())
    target = Path(out)
    written = []
    for relative, text in sorted(files.items()):
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
        written.append(path)
    return written
