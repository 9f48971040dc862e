"""The training log (``log.csv``): one row per logging step; columns grow when a later row brings new keys
(e.g. diagnostics missing from a skipped step); a resumed run first drops the rows logged after its
checkpoint, so every step appears once."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Mapping

from hmr.utils.io import atomic_open


def _read(path: Path) -> tuple[List[str], List[Dict[str, str]]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _rewrite(path: Path, fields: List[str], rows: List[Mapping[str, object]]) -> None:
    with atomic_open(path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)


def append_row(path: Path, record: Mapping[str, object]) -> None:
    """Append ``record``; a key the header lacks widens the header (earlier rows get empty cells)."""
    path = Path(path)
    if not path.exists():
        _rewrite(path, sorted(record), [record])
        return
    with open(path, newline="") as handle:
        fields = next(csv.reader(handle), [])
    new = sorted(set(record) - set(fields))
    if new:
        fields, rows = _read(path)
        _rewrite(path, fields + new, rows + [dict(record)])
        return
    with open(path, "a", newline="") as handle:
        csv.DictWriter(handle, fieldnames=fields, restval="").writerow(record)


def drop_rows_after(path: Path, step: int) -> int:
    """Remove rows whose ``step`` column is larger than ``step`` (a killed run's steps past its checkpoint);
    returns how many were removed."""
    path = Path(path)
    if not path.exists():
        return 0
    fields, rows = _read(path)
    keep = [row for row in rows if not row.get("step") or float(row["step"]) <= step]
    if len(keep) != len(rows):
        _rewrite(path, fields, keep)
    return len(rows) - len(keep)
