"""xlrun: declarative experiments for multilingual dense retrievers.

The pipeline is spec → runs → train → evaluate → store → report; each stage lives in
its own subpackage and passes small frozen values to the next. In a notebook,
``xlrun.connect(url)`` opens a results database read-only (see :mod:`xlrun.api`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from xlrun.api import Results

__version__ = "0.1.0"


def connect(url: str | os.PathLike[str] | None = None, *,
            dataframe: Literal["polars", "pandas"] = "polars") -> Results:
    """Open a results database read-only: ``xlrun.connect("sqlite:///xlrun.db")`` (a URL or a
    SQLite path; default ``$XLRUN_DB``, else ``sqlite:///xlrun.db``). DataFrames are polars,
    or pandas with ``dataframe="pandas"``. See :func:`xlrun.api.connect`.

    Raises:
        UsageError: a bad URL, no database, or one that is not xlrun's or is newer.
    """
    from xlrun.api import connect as _connect  # deferred: `import xlrun` stays light (the CLI)

    return _connect(url, dataframe=dataframe)
