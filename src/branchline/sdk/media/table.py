"""`Table`: columns and rows of values, stored as a `.table.json` run file (`table-file`).

Cells hold plain values (numbers, strings, lists, dicts) or media (an `Image`, `Audio`, ...);
media cells are stored as run files of their own and replaced by their descriptors in the JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from branchline.sdk.media.base import Media, short

__all__ = ["Table"]

_DEFAULT_COLUMNS = ["Input", "Output", "Expected"]


def _cell(value: Any, where: str) -> Any:
    """A cell as it is journaled: media as they are (stored beside), the rest as plain JSON."""
    if isinstance(value, Media):
        return value
    from branchline.sdk.media.histogram import Histogram
    from branchline.sdk.values import normalize

    if isinstance(value, Histogram):
        return value.to_json()
    module = type(value).__module__
    if module == "numpy" and hasattr(value, "tolist"):
        # A scalar or an array, as plain values (an array cell stays a list, never a histogram).
        value = value.tolist()
    elif module.startswith("torch") and hasattr(value, "tolist"):
        value = value.detach().cpu().tolist()
    try:
        return normalize(value)
    except TypeError as exc:
        raise TypeError(f"Table: the cell {where} holds {short(value)}, which cannot be stored ({exc}).") from None


class Table(Media):
    """A table logged as a run file: `columns`, `data` (a list of rows), from rows or a DataFrame."""

    kind = "table"

    def __init__(
        self,
        columns: Sequence[str] | None = None,
        data: Sequence[Sequence[Any]] | None = None,
        rows: Sequence[Sequence[Any]] | None = None,
        dataframe: Any = None,
        dtype: Any = None,
        optional: bool = True,
        allow_mixed_types: bool = False,
    ) -> None:
        if dataframe is not None:
            columns = [str(c) for c in dataframe.columns]
            data = dataframe.itertuples(index=False, name=None)
        rows_in = data if data is not None else rows
        if rows_in is not None and not isinstance(rows_in, Sequence):
            rows_in = list(rows_in)
        if columns is None:
            width = len(rows_in[0]) if rows_in else len(_DEFAULT_COLUMNS)
            columns = _DEFAULT_COLUMNS if width == len(_DEFAULT_COLUMNS) else [f"c{i}" for i in range(width)]
        if isinstance(columns, str) or not all(isinstance(c, str | int) for c in columns):
            raise TypeError(f"Table(columns={short(columns)}): expected a list of column names.")
        self.columns: list[str] = [str(c) for c in columns]
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"Table(columns={self.columns!r}): column names must be unique.")
        self.data: list[list[Any]] = []
        for index, row in enumerate(rows_in or ()):
            if isinstance(row, str | bytes) or not isinstance(row, Sequence | Iterable):
                raise TypeError(
                    f"Table(data=...): row {index} is {short(row)}; expected a list of rows, each a list of "
                    f"{len(self.columns)} values ({', '.join(self.columns)})."
                )
            self.add_data(*row)

    @property
    def ncols(self) -> int:
        return len(self.columns)

    @property
    def nrows(self) -> int:
        return len(self.data)

    def add_data(self, *values: Any) -> None:
        """Append one row; it must have one value per column."""
        if len(values) != len(self.columns):
            raise ValueError(
                f"Table.add_data: the row {short(list(values))} has {len(values)} values but the table has "
                f"{len(self.columns)} columns ({', '.join(self.columns)})."
            )
        index = len(self.data)
        self.data.append([_cell(v, f"[{index}][{self.columns[i]!r}]") for i, v in enumerate(values)])

    def add_column(self, name: str, data: Sequence[Any], optional: bool = False) -> None:
        """Add a column holding `data` (one value per existing row)."""
        if name in self.columns:
            raise ValueError(f"Table.add_column: the table already has a column {name!r}.")
        values = list(data)
        if self.data and len(values) != len(self.data):
            raise ValueError(f"Table.add_column({name!r}): {len(values)} values for a table of {len(self.data)} rows.")
        if not self.data:
            self.data = [[] for _ in values]
        self.columns.append(str(name))
        for i, (row, value) in enumerate(zip(self.data, values, strict=True)):
            row.append(_cell(value, f"[{i}][{name!r}]"))

    def get_column(self, name: str, convert_to: str | None = None) -> Any:
        """The values of column `name` (a list, or a numpy array with `convert_to="numpy"`)."""
        if name not in self.columns:
            raise KeyError(f"Table.get_column: no column {name!r}; the columns are {', '.join(self.columns)}.")
        index = self.columns.index(name)
        values = [row[index] for row in self.data]
        if convert_to == "numpy":
            import numpy as np

            return np.array(values)
        return values

    def get_index(self) -> list[int]:
        return list(range(len(self.data)))

    def get_dataframe(self) -> Any:
        """The table as a pandas DataFrame (media cells as the objects themselves)."""
        import pandas as pd

        return pd.DataFrame(self.data, columns=self.columns)

    def iterrows(self) -> Any:
        yield from enumerate(self.data)

    def children(self) -> dict[str, Media]:
        return {
            f"cell:{r}:{c}": value
            for r, row in enumerate(self.data)
            for c, value in enumerate(row)
            if isinstance(value, Media)
        }

    def payload(self) -> dict[str, Any]:
        # Media cells are left out here: the writer puts their descriptors in (from `children`).
        rows = [[None if isinstance(v, Media) else v for v in row] for row in self.data]
        return {"columns": list(self.columns), "data": rows}

    def __repr__(self) -> str:
        return f"<Table {self.nrows}×{self.ncols}>"
