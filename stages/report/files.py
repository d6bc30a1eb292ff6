"""Reading the report's input files: the error every reader raises, CSV helpers, and the column
names the evaluations share. Imports no family (the families' report modules use it)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stages.errors import StageError

VOID = "__void__"
GLOBAL = "__global__"
MEAN = "__mean__"


class ReportInputError(StageError):
    """An input of the report is missing or does not hold what the contract says.

    The message is one line naming the file and the problem; the CLI prints it and exits 1.
    """


def read_csv(path: Path, **kwargs) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kwargs)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise ReportInputError(f"{path}: not a readable CSV: {err}") from None


def require_columns(frame: pd.DataFrame, columns, path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ReportInputError(f"{path}: missing columns {missing} (has {list(frame.columns)})")


def require_numeric(frame: pd.DataFrame, columns, path: Path) -> None:
    for column in columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise ReportInputError(f"{path}: column {column!r} is not numeric")
