"""The run summary: one JSON per run for later aggregation, and plain-text tables for humans.

The JSON carries a `schema` number so a leaderboard report can refuse (rather than misread)
summaries written by an incompatible version. Bump SCHEMA when a field changes meaning.
"""
from __future__ import annotations

import json
import math
import numbers
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from dawnjax.errors import ResultsError
from dawnjax.report import atomic

SCHEMA = 1

#: (key in the row dict, column header, format spec such as '.2f' or a callable value -> str).
Column = tuple[str, str, 'str | Callable[[Any], str]']


def jsonable(obj: Any) -> Any:
  """Plain JSON types: numpy/jax scalars and arrays unwrapped, NaN/inf to None (strict JSON)."""
  if isinstance(obj, Mapping):
    return {str(k): jsonable(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [jsonable(v) for v in obj]
  if isinstance(obj, (str, bool, type(None))):
    return obj
  if isinstance(obj, os.PathLike):
    return os.fspath(obj)
  if isinstance(obj, numbers.Integral):
    return int(obj)
  if isinstance(obj, numbers.Real):
    x = float(obj)
    return x if math.isfinite(x) else None
  if hasattr(obj, '__array__'):
    import numpy as np  # only reached for array-likes; keeps the module light otherwise
    return jsonable(np.asarray(obj).tolist())
  return obj  # left for json to reject with a TypeError naming the type


def write_summary(path: str | os.PathLike, summary: Mapping[str, Any]) -> Path:
  """Atomically writes `summary` as JSON with `schema` first. Returns the path.

  Non-finite floats become null, since a diverged run's NaN loss must not make the file
  unreadable to strict JSON parsers.
  """
  if 'schema' in summary and summary['schema'] != SCHEMA:
    raise ResultsError(f'{path}: summary has schema {summary["schema"]!r}, this version '
                       f'writes {SCHEMA}')
  obj = {'schema': SCHEMA, **jsonable({k: v for k, v in summary.items() if k != 'schema'})}
  try:
    return atomic.atomic_write_json(path, obj)
  except OSError as err:
    raise ResultsError(f'cannot write summary {path}: {err.strerror or err}; check that the '
                       'output directory is writable') from err
  except (TypeError, ValueError) as err:
    raise ResultsError(f'{path}: summary holds a value JSON cannot encode: {err}') from err


def read_summary(path: str | os.PathLike) -> dict[str, Any]:
  """Reads a summary written by write_summary, refusing other schema versions."""
  try:
    obj = json.loads(Path(path).read_text(encoding='utf-8'))
  except OSError as err:
    raise ResultsError(f'cannot read summary {path}: {err.strerror or err}') from err
  except ValueError as err:
    raise ResultsError(f'{path}: not valid JSON ({err})') from err
  if not isinstance(obj, dict) or obj.get('schema') != SCHEMA:
    found = obj.get('schema') if isinstance(obj, dict) else type(obj).__name__
    raise ResultsError(f'{path}: summary schema {found!r}, expected {SCHEMA}')
  return obj


def _cell(value: Any, fmt: str | Callable[[Any], str]) -> str:
  if value is None:
    return '-'
  if callable(fmt):
    return fmt(value)
  try:
    return format(value, fmt)
  except (TypeError, ValueError):
    # A table mixing types (a 'n/a' string in a numeric column) should still print.
    return str(value)


def _is_number(value: Any) -> bool:
  return isinstance(value, numbers.Number) and not isinstance(value, bool)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
  """Renders rows as a fixed-width table: header, dashed rule, one line per row.

  Missing keys and None print as '-'. Columns whose values are all numbers are right-aligned
  so decimal points line up; others are left-aligned. No trailing newline.
  """
  header = [h for _, h, _ in columns]
  cells = [[_cell(row.get(key), fmt) for key, _, fmt in columns] for row in rows]
  widths = [max([len(header[j])] + [len(r[j]) for r in cells]) for j in range(len(columns))]
  right = [all(_is_number(row[key]) for row in rows if row.get(key) is not None)
           for key, _, _ in columns]

  def line(items: Sequence[str]) -> str:
    padded = [s.rjust(w) if r else s.ljust(w) for s, w, r in zip(items, widths, right)]
    return '  '.join(padded).rstrip()

  return '\n'.join([line(header), line(['-' * w for w in widths]), *map(line, cells)])
