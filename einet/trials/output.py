"""A set's results: per-trial rows written as trials finish (CSV or Parquet), and the
per-condition table of each figure against the baseline."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .stats import Comparison, Summary, compare, summarise

BASE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("set", "string"),
    ("trial", "int64"),
    ("condition", "string"),
    ("condition_index", "int64"),
    ("seed", "int64"),
    ("threads", "int64"),
    ("t_start_ms", "float64"),
    ("t_stop_ms", "float64"),
    ("spikes", "int64"),
    ("digest", "string"),
)
TAIL_COLUMNS: tuple[tuple[str, str], ...] = (("wall_s", "float64"), ("worker", "string"), ("error", "string"))

FIGURE_PREFIXES = ("rate_hz", "cv", "fano", "weight", "dweight")


def figure_names(populations: Sequence[str], synapse_models: Sequence[str]) -> tuple[str, ...]:
    """The figures of a network's trials: per population rate, CV and Fano factor; per synapse
    model with weights the mean weight and its change."""
    return (*(f"{f}.{p}" for f in ("rate_hz", "cv", "fano") for p in populations), *(f"{f}.{m}" for m in synapse_models for f in ("weight", "dweight")))


def columns(figures: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """Every column of a row (name, type)."""
    return (*BASE_COLUMNS, *((f, "float64") for f in figures), *TAIL_COLUMNS)


class RowWriter:
    """One row per trial into ``path`` (``.csv`` or ``.parquet``), each written as it comes:
    a CSV line flushed at once; a Parquet row group (the file is whole once closed, which an
    interrupted set does too)."""

    def __init__(self, path: Path, cols: tuple[tuple[str, str], ...]) -> None:
        self.path = path
        self.cols = cols
        self._csv: Any = None
        self._file: TextIO | None = None
        self._parquet: Any = None
        self._schema: Any = None
        if path.suffix.lower() == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}
            self._schema = pa.schema([(name, types[kind]) for name, kind in cols])
            self._parquet = pq.ParquetWriter(str(path), self._schema)
        else:
            self._file = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed by close()
            self._csv = csv.DictWriter(self._file, fieldnames=[name for name, _ in cols], extrasaction="ignore")
            self._csv.writeheader()
            self._file.flush()

    def write(self, row: dict[str, Any]) -> None:
        clean = {name: _cell(row.get(name), kind) for name, kind in self.cols}
        if self._parquet is not None:
            import pyarrow as pa

            self._parquet.write_table(pa.Table.from_pylist([clean], schema=self._schema))
        elif self._csv is not None and self._file is not None:
            self._csv.writerow({k: "" if v is None else v for k, v in clean.items()})
            self._file.flush()

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        if self._file is not None:
            self._file.close()
            self._file = None


def _cell(value: Any, kind: str) -> Any:
    if value is None or value == "":
        return None if kind != "string" else ("" if value == "" else None)
    if kind == "float64":
        x = float(value)
        return x if math.isfinite(x) else None
    if kind == "int64":
        return int(value)
    return str(value)


@dataclass(frozen=True)
class FigureLine:
    """One figure of one condition: its summary and, for a condition other than the baseline,
    its comparison with the baseline."""

    figure: str
    condition: str
    summary: Summary
    versus: Comparison | None

    def to_dict(self) -> dict[str, Any]:
        return {"figure": self.figure, "condition": self.condition, **self.summary.to_dict(), "vs_baseline": None if self.versus is None else self.versus.to_dict()}


def condition_table(rows: Sequence[dict[str, Any]], conditions: Sequence[str], figures: Sequence[str]) -> list[FigureLine]:
    """For each figure (and ``spikes``) and condition, the summary over its finished trials
    and the comparison with the first condition (the baseline)."""
    ok = [r for r in rows if not r.get("error")]
    out = []
    for figure in (*figures, "spikes"):
        per = [[r[figure] for r in ok if r["condition_index"] == c and figure in r] for c in range(len(conditions))]
        if not any(per):
            continue
        for c, name in enumerate(conditions):
            out.append(FigureLine(figure, name, summarise(per[c]), compare(per[c], per[0]) if c else None))
    return out
