"""The DAWNBench submission format (stanford-futuredata/dawn-bench-entries, v1.0).

A training result is a JSON of run metadata plus a TSV beside it with the same stem: one row
per evaluation with the epoch, the wall-clock hours since the start, and the quality metric(s).
Time to accuracy is read off the FIRST row at or over the target, so the TSV must hold every
evaluation, not just the best one. Accuracies are in percent, SQuAD F1 is a fraction in [0, 1].
An inference result is a JSON alone, carrying latency (ms per item), cost (USD per item) and the
accuracy the model reached.
"""
from __future__ import annotations

import dataclasses
import datetime
import math
import numbers
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from dawnjax.errors import ResultsError
from dawnjax.report import atomic

VERSION = 'v1.0'

TSV_COLUMNS: dict[str, tuple[str, ...]] = {
    'cifar10': ('epoch', 'hours', 'top1Accuracy'),
    'imagenet': ('epoch', 'hours', 'top1Accuracy', 'top5Accuracy'),
    'squad': ('epoch', 'hours', 'f1Score'),
}

#: The accuracy an inference JSON must carry per task: the metric of that task's target.
INFERENCE_ACCURACY_FIELD = {'cifar10': 'top1Accuracy', 'imagenet': 'top5Accuracy',
                            'squad': 'f1Score'}

#: Valid range per metric; catches the classic unit slip (F1 in percent, accuracy as fraction
#: is not caught, but a percent F1 of 73 is).
_METRIC_RANGE = {'top1Accuracy': (0.0, 100.0), 'top5Accuracy': (0.0, 100.0),
                 'f1Score': (0.0, 1.0)}

_DATE_RE = re.compile(r'\d{4}-\d{2}-\d{2}')


@dataclasses.dataclass(frozen=True)
class EpochRow:
  """One TSV line: `metrics` maps the task's metric columns (all but epoch/hours) to values."""
  epoch: float | int
  hours: float
  metrics: dict[str, float]


def _check_task(task: str) -> tuple[str, ...]:
  if task not in TSV_COLUMNS:
    raise ResultsError(f'unknown DAWNBench task {task!r}; expected one of {sorted(TSV_COLUMNS)}')
  return TSV_COLUMNS[task]


def _is_number(x: Any) -> bool:
  # bool is an int subclass, but True as an accuracy is always a bug.
  return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _check_rows(task: str, rows: Sequence[EpochRow], where: str,
                lines: Sequence[int] | None = None) -> None:
  """Raises ResultsError unless rows fit `task`'s columns, are finite, and epoch/hours increase."""
  metric_names = _check_task(task)[2:]
  prev = None
  for i, row in enumerate(rows):
    at = f'{where}, line {lines[i]}' if lines is not None else f'{where}, row {i}'
    if set(row.metrics) != set(metric_names):
      raise ResultsError(f'{at}: metrics {sorted(row.metrics)} do not match the {task} columns '
                         f'{list(metric_names)}')
    for name, value in [('epoch', row.epoch), ('hours', row.hours), *row.metrics.items()]:
      if not _is_number(value) or not math.isfinite(value):
        raise ResultsError(f'{at}: {name} must be a finite number, got {value!r}')
    if row.epoch < 0 or row.hours < 0:
      raise ResultsError(f'{at}: epoch and hours must be >= 0, got {row.epoch!r}, {row.hours!r}')
    for name, value in row.metrics.items():
      lo, hi = _METRIC_RANGE[name]
      if not lo <= value <= hi:
        unit = 'a fraction' if hi == 1.0 else 'percent'
        raise ResultsError(f'{at}: {name}={value!r} is outside [{lo:g}, {hi:g}] ({name} is {unit})')
    if prev is not None:
      # Strict: equal epochs/hours mean a duplicated or mis-timed row, which would make the
      # first-crossing time ambiguous.
      if row.epoch <= prev.epoch:
        raise ResultsError(f'{at}: epoch {row.epoch!r} does not increase (previous {prev.epoch!r})')
      if row.hours <= prev.hours:
        raise ResultsError(f'{at}: hours {row.hours!r} does not increase (previous {prev.hours!r})')
    prev = row


def _format_number(x: float | int) -> str:
  # repr is the shortest string that parses back to the same float: exact round trips.
  return str(int(x)) if isinstance(x, numbers.Integral) else repr(float(x))


def format_tsv(task: str, rows: Iterable[EpochRow]) -> str:
  """Renders rows as a DAWNBench TSV (header + one line per row, '\\n'-terminated)."""
  columns = _check_task(task)
  rows = list(rows)
  _check_rows(task, rows, where=f'{task} TSV')
  lines = ['\t'.join(columns)]
  for row in rows:
    values = [row.epoch, row.hours, *(row.metrics[c] for c in columns[2:])]
    lines.append('\t'.join(_format_number(v) for v in values))
  return '\n'.join(lines) + '\n'


def _parse_number(field: str) -> float | int:
  try:
    return int(field)
  except ValueError:
    return float(field)  # ValueError propagates to the caller, which names the line


def _read_source(text_or_path: str | os.PathLike) -> tuple[str, str]:
  """Returns (text, name for messages). A str with a tab or newline is TSV text, else a path."""
  if isinstance(text_or_path, str) and ('\t' in text_or_path or '\n' in text_or_path):
    return text_or_path, '<TSV text>'
  path = Path(text_or_path)
  try:
    return path.read_text(encoding='utf-8'), str(path)
  except OSError as err:
    raise ResultsError(f'cannot read DAWNBench TSV {path}: {err.strerror or err}') from err


def parse_tsv(text_or_path: str | os.PathLike, task: str | None = None) -> list[EpochRow]:
  """Parses a DAWNBench TSV, inferring the task from its header when `task` is None.

  Raises ResultsError naming the file and line for a bad header, a wrong column count, a
  non-numeric or out-of-range value, or an epoch/hours that does not increase.
  """
  text, where = _read_source(text_or_path)
  numbered = [(i, line.rstrip('\r')) for i, line in enumerate(text.split('\n'), start=1)]
  numbered = [(i, line) for i, line in numbered if line.strip()]
  if not numbered:
    raise ResultsError(f'{where}: empty, expected a tab-separated DAWNBench header line such '
                       f'as {list(TSV_COLUMNS["cifar10"])}')
  header_line, header = numbered[0]
  header_fields = tuple(f.strip() for f in header.split('\t'))
  if task is None:
    matches = [t for t, cols in TSV_COLUMNS.items() if cols == header_fields]
    if not matches:
      known = [list(c) for c in TSV_COLUMNS.values()]
      raise ResultsError(f'{where}, line {header_line}: header {list(header_fields)} matches no '
                         f'DAWNBench task; expected one of {known}')
    task = matches[0]
  columns = _check_task(task)
  if header_fields != columns:
    raise ResultsError(f'{where}, line {header_line}: header {list(header_fields)} is not the '
                       f'{task} header {list(columns)}')

  rows, line_numbers = [], []
  for line_no, line in numbered[1:]:
    fields = [f.strip() for f in line.split('\t')]
    if len(fields) != len(columns):
      raise ResultsError(f'{where}, line {line_no}: {len(fields)} tab-separated fields, expected '
                         f'{len(columns)} ({", ".join(columns)})')
    values = []
    for name, field in zip(columns, fields):
      try:
        values.append(_parse_number(field))
      except ValueError:
        raise ResultsError(f'{where}, line {line_no}: {name} {field!r} is not a number') from None
    metrics = {name: float(v) for name, v in zip(columns[2:], values[2:])}
    rows.append(EpochRow(epoch=values[0], hours=float(values[1]), metrics=metrics))
    line_numbers.append(line_no)
  _check_rows(task, rows, where, lines=line_numbers)
  return rows


def first_crossing(rows: Iterable[EpochRow], metric: str, threshold: float,
                   higher_is_better: bool = True) -> EpochRow | None:
  """The first row whose `metric` is at or over (under, if lower is better) `threshold`.

  DAWNBench's rule: a later, better row never counts, and reaching the target exactly counts.
  None when no row gets there (NaN never does).
  """
  for row in rows:
    if metric not in row.metrics:
      raise ResultsError(f'row at epoch {row.epoch!r} has no metric {metric!r} '
                         f'(it has {sorted(row.metrics)})')
    value = row.metrics[metric]
    if (value >= threshold) if higher_is_better else (value <= threshold):
      return row
  return None


def _timestamp(value: str | datetime.date) -> str:
  if isinstance(value, datetime.datetime):
    value = value.date()
  if isinstance(value, datetime.date):
    return value.isoformat()
  return value  # validate_json checks strings


def _base_json(*, author, author_email, framework, model, hardware, timestamp, cost_per_hour,
               code_url, log_filename) -> dict[str, Any]:
  # Key order follows the DAWNBench README so files diff cleanly against published entries.
  obj: dict[str, Any] = {'version': VERSION, 'author': author, 'authorEmail': author_email,
                         'framework': framework}
  if code_url is not None:
    obj['codeURL'] = code_url
  obj['model'] = model
  obj['hardware'] = hardware
  if cost_per_hour is not None:
    obj['costPerHour'] = cost_per_hour
  obj['timestamp'] = _timestamp(timestamp)
  if log_filename is not None:
    obj['logFilename'] = log_filename
  return obj


def training_json(*, author: str, author_email: str, framework: str, model: str, hardware: str,
                  timestamp: str | datetime.date, cost_per_hour: float | None = None,
                  code_url: str | None = None, log_filename: str | None = None,
                  misc: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """A DAWNBench training JSON (validated). Optional fields left None are omitted."""
  obj = _base_json(author=author, author_email=author_email, framework=framework, model=model,
                   hardware=hardware, timestamp=timestamp, cost_per_hour=cost_per_hour,
                   code_url=code_url, log_filename=log_filename)
  obj['misc'] = dict(misc or {})
  validate_json(obj, kind='training')
  return obj


def inference_json(*, author: str, author_email: str, framework: str, model: str, hardware: str,
                   timestamp: str | datetime.date, latency_ms: float,
                   cost_per_item_usd: float | None, accuracy_field: str, accuracy_value: float,
                   cost_per_hour: float | None = None, code_url: str | None = None,
                   log_filename: str | None = None,
                   misc: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """A DAWNBench inference JSON (validated): `latency` ms/item, `cost` USD/item (omitted if None).

  `accuracy_field` is top1Accuracy (CIFAR-10), top5Accuracy (ImageNet) or f1Score (SQuAD).
  """
  if accuracy_field not in _METRIC_RANGE:
    raise ResultsError(f'accuracy_field {accuracy_field!r} must be one of {sorted(_METRIC_RANGE)}')
  obj = _base_json(author=author, author_email=author_email, framework=framework, model=model,
                   hardware=hardware, timestamp=timestamp, cost_per_hour=cost_per_hour,
                   code_url=code_url, log_filename=log_filename)
  obj['latency'] = latency_ms
  if cost_per_item_usd is not None:
    obj['cost'] = cost_per_item_usd
  obj[accuracy_field] = accuracy_value
  obj['misc'] = dict(misc or {})
  validate_json(obj, kind='inference')
  return obj


_REQUIRED_STR = ('author', 'authorEmail', 'framework', 'model', 'hardware')
_OPTIONAL_STR = ('codeURL', 'logFilename')


def validate_json(obj: Any, kind: str = 'training', task: str | None = None,
                  where: str = 'DAWNBench JSON') -> None:
  """Raises ResultsError naming the field unless `obj` is a valid DAWNBench `kind` JSON.

  kind: 'training' or 'inference'. For inference, `task` selects the required accuracy field
  (any one of them is accepted when None). `where` names the file in messages.
  """
  if kind not in ('training', 'inference'):
    raise ResultsError(f"kind must be 'training' or 'inference', got {kind!r}")
  if task is not None:
    _check_task(task)
  if not isinstance(obj, Mapping):
    raise ResultsError(f'{where}: expected a JSON object, got {type(obj).__name__}')

  def fail(field: str, problem: str) -> None:
    raise ResultsError(f'{where}: field {field!r} {problem}')

  def number(field: str, *, required: bool, positive: bool = False) -> None:
    if field not in obj:
      if required:
        fail(field, 'is missing')
      return
    value = obj[field]
    if not _is_number(value) or not math.isfinite(value):
      fail(field, f'must be a finite number, got {value!r}')
    if value < 0 or (positive and value == 0):
      fail(field, f'must be {"> 0" if positive else ">= 0"}, got {value!r}')

  if 'version' not in obj:
    fail('version', f'is missing (expected {VERSION!r})')
  if obj['version'] != VERSION:
    fail('version', f'must be {VERSION!r}, got {obj["version"]!r}')
  for field in _REQUIRED_STR:
    if field not in obj:
      fail(field, 'is missing')
    if not isinstance(obj[field], str) or not obj[field].strip():
      fail(field, f'must be a non-empty string, got {obj[field]!r}')
  for field in _OPTIONAL_STR:
    if field in obj and not isinstance(obj[field], str):
      fail(field, f'must be a string, got {obj[field]!r}')
  if 'timestamp' not in obj:
    fail('timestamp', 'is missing (format yyyy-mm-dd)')
  stamp = obj['timestamp']
  if not isinstance(stamp, str) or not _DATE_RE.fullmatch(stamp):
    fail('timestamp', f'must be a yyyy-mm-dd string, got {stamp!r}')
  try:
    datetime.date.fromisoformat(stamp)
  except ValueError:
    fail('timestamp', f'is not a calendar date: {stamp!r}')
  if 'misc' in obj and not isinstance(obj['misc'], Mapping):
    fail('misc', f'must be a JSON object, got {type(obj["misc"]).__name__}')
  number('costPerHour', required=False)

  if kind == 'inference':
    # The upstream checker requires latency; the README makes cost optional.
    number('latency', required=True, positive=True)
    number('cost', required=False)
    fields = [INFERENCE_ACCURACY_FIELD[task]] if task else list(_METRIC_RANGE)
    present = [f for f in fields if f in obj]
    if not present:
      fail(fields[0] if task else '/'.join(fields), f'is missing (the {task or "task"} accuracy)')
    for field in present:
      number(field, required=True)
      lo, hi = _METRIC_RANGE[field]
      if not lo <= obj[field] <= hi:
        fail(field, f'must be in [{lo:g}, {hi:g}], got {obj[field]!r}')


_UNSAFE = re.compile(r'[^A-Za-z0-9.+-]+')


def _sanitize_part(part: str, what: str) -> str:
  # '_' separates the four parts, so it is replaced inside a part to keep the name splittable.
  clean = _UNSAFE.sub('-', str(part)).strip('-.')
  clean = re.sub(r'-{2,}', '-', clean)
  if not clean:
    raise ResultsError(f'{what} {part!r} leaves nothing usable in a file name; use letters or '
                       'digits')
  return clean


def result_basename(author: str, model: str, hardware_tag: str, framework: str) -> str:
  """`[author]_[model]_[hardware tag]_[framework]`, each part reduced to [A-Za-z0-9.+-]."""
  parts = [(author, 'author'), (model, 'model'), (hardware_tag, 'hardware tag'),
           (framework, 'framework')]
  return '_'.join(_sanitize_part(p, what) for p, what in parts)


def write_training_result(output_dir: str | os.PathLike, *, task: str,
                          rows: Sequence[EpochRow], json_obj: Mapping[str, Any],
                          basename: str | None = None) -> tuple[Path, Path]:
  """Validates, then atomically writes `<basename>.json` and `<basename>.tsv` into output_dir.

  The TSV shares the JSON's stem because that is how DAWNBench pairs them. `basename` defaults
  to result_basename(author, model, hardware, framework) from the JSON; pass one built with a
  short hardware tag (e.g. '1h100') for readable names. Returns (json_path, tsv_path).
  """
  validate_json(json_obj, kind='training', task=task)
  if not rows:
    raise ResultsError(f'{task} training result has no TSV rows; DAWNBench needs at least one')
  tsv_text = format_tsv(task, rows)  # validates rows before anything touches the disk
  if basename is None:
    basename = result_basename(json_obj['author'], json_obj['model'], json_obj['hardware'],
                               json_obj['framework'])
  elif os.sep in basename or (os.altsep and os.altsep in basename) or basename.startswith('.'):
    raise ResultsError(f'basename {basename!r} must be a plain file name without directories')
  out = Path(output_dir)
  json_path, tsv_path = out / f'{basename}.json', out / f'{basename}.tsv'
  try:
    # TSV first: a JSON without its TSV is an invalid entry, a lone TSV is merely ignored.
    atomic.atomic_write_text(tsv_path, tsv_text)
    atomic.atomic_write_json(json_path, dict(json_obj), indent=4)
  except OSError as err:
    raise ResultsError(f'cannot write DAWNBench results to {out}: {err.strerror or err}; '
                       'check that the output directory is writable') from err
  except (TypeError, ValueError) as err:
    raise ResultsError(f'{json_path}: the JSON (misc?) holds a value JSON cannot encode: '
                       f'{err}') from err
  return json_path, tsv_path
