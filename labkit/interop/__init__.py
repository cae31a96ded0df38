"""Importers and exporters for peer tools' formats (docs/interop.md).

``import_file(fmt, path, out_dir, corpus=...)`` reads a Ragas, DeepEval, promptfoo,
OpenInference (Phoenix / OTLP JSON spans), Langfuse or mapped-CSV file and writes
``out_dir/dataset.jsonl`` and, when the file carries outputs, the run directory
``out_dir/run/`` that ``labkit score`` and ``labkit gate`` take as is.
``export_run(fmt, dataset, out, run_dir=...)`` writes a labkit dataset (and run) back as
a Ragas or DeepEval file. One module per format; the shared mapping in ``core``, gold
from text in ``goldtext``.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from labkit.errors import ConfigError

__all__ = ["EXPORT_FORMATS", "IMPORT_FORMATS", "import_file"]

#: format name -> module (each has ``read(path, **options) -> (records, FieldLog)``)
IMPORT_FORMATS = {"ragas": "ragas", "deepeval": "deepeval", "promptfoo": "promptfoo",
                  "openinference": "openinference", "langfuse": "langfuse", "csv": "csvmap"}
EXPORT_FORMATS = ("ragas", "deepeval")


def import_file(
    fmt: str, path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
    corpus: Any = None, threshold: float | None = None, **options: Any,
) -> Any:
    """Import one peer file; returns the :class:`~labkit.interop.core.ImportOutcome`."""
    from labkit.corpus import Corpus
    from labkit.interop.core import write_import

    if fmt not in IMPORT_FORMATS:
        raise ConfigError(f"unknown import format {fmt!r}", field="format", known=sorted(IMPORT_FORMATS))
    mod = importlib.import_module(f"labkit.interop.{IMPORT_FORMATS[fmt]}")
    records, log = mod.read(path, **options)
    corp = Corpus.load(corpus) if isinstance(corpus, (str, os.PathLike)) else corpus
    return write_import(records, log, fmt=fmt, source=path, out_dir=out_dir, corpus=corp, threshold=threshold)
