"""The leaderboard: every result under some directories, beside the published DAWNBench records.

Recognised files (found recursively; dot-files, such as atomic-write leftovers, are skipped):
  * `summary.json`: a dawnjax training run (report/summary.py schema);
  * `inference_summary.json`: a dawnjax inference benchmark (experiments/inference.py);
  * `X.json` + `X.tsv`: a DAWNBench training entry (any author);
  * `X.json` with a `latency` field: a DAWNBench inference entry.
In a directory holding a dawnjax summary, the DAWNBench files dawnjax wrote beside it are the same
result and are not listed twice. Other JSON files that parse (model.json, artifact.json, ...) are
not results and are skipped; a file that should be a result but is malformed costs one line in
`errors` and the rest is still reported.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

from dawnjax import cost as cost_lib
from dawnjax.errors import ResultsError
from dawnjax.report import dawnbench, summary as summary_lib

RECORDS = Path(__file__).with_name('data') / 'dawnbench_records.tsv'
TRAIN_SUMMARY = 'summary.json'
INFERENCE_SUMMARY = 'inference_summary.json'

#: DAWNBench's quality targets, used for third-party TSVs (which do not state theirs).
DAWNBENCH_TARGETS = {'cifar10': ('top1Accuracy', 94.0), 'imagenet': ('top5Accuracy', 93.0),
                     'squad': ('f1Score', 0.73)}
_RECORD_TASKS = {'CIFAR10': 'cifar10', 'ImageNet': 'imagenet', 'SQuAD': 'squad'}


@dataclasses.dataclass
class Entry:
  """One leaderboard row: a training result (kind 'train') or an inference result ('inference')."""
  kind: str
  source: str  # 'dawnjax', 'DAWNBench file' or 'DAWNBench record'
  task: str
  model: str
  hardware: str
  path: str  # file (or record entry name) it came from
  dataset: str | None = None
  seeds: int | None = None
  metric: str | None = None
  accuracy_mean: float | None = None
  accuracy_std: float | None = None
  target: float | None = None
  reached: bool | None = None
  tta: str | None = None
  time_to_target_s: float | None = None
  cost_usd: float | None = None  # training: to the target; inference: per item
  latency_ms: float | None = None
  latency_p99_ms: float | None = None
  request: str | None = None  # inference: how the reported latency's requests were made (mode, wait)
  mfu: float | None = None
  throughput: float | None = None  # training examples/s or inference items/s
  partial: bool = False
  cost_from_table: bool = False  # cost_usd priced here from prices.tsv: the run recorded none
  curve: list[tuple[float, float]] = dataclasses.field(default_factory=list)  # (seconds, metric)
  run_dir: str | None = None  # dawnjax training: its directory; inference: the run it serves


@dataclasses.dataclass
class Scan:
  entries: list[Entry]
  errors: list[str]


def _num(x: Any) -> float | None:
  return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def _mean_curve(per_seed: Sequence[dict[str, Any]], metric: str) -> list[tuple[float, float]]:
  """Mean over seeds, epoch by epoch, of (timed seconds, metric) where every seed evaluated."""
  curves = [[(e['timed_seconds'], e['metrics'][metric]) for e in seed.get('epochs', [])
             if metric in (e.get('metrics') or {})] for seed in per_seed]
  if not curves or not all(curves):
    return []
  n = min(len(c) for c in curves)
  return [(sum(c[i][0] for c in curves) / len(curves), sum(c[i][1] for c in curves) / len(curves))
          for i in range(n)]


def parse_train_summary(path: Path) -> Entry:
  s = summary_lib.read_summary(path)
  try:
    target = s['target']
    acc = s['accuracy']
    metric = target['metric']
    recipe = (s.get('workload') or {}).get('recipe') or {}
    cost = s.get('cost') or {}
    ttt = _num(s.get('time_to_target_seconds'))
    usd = _num(cost.get('time_to_target_cost_usd'))
    from_table = False
    device = s.get('device') or {}
    if usd is None and not cost and ttt is not None and device.get('device_kind'):
      # Summaries written before the price table existed: price them now, and say so.
      price = cost_lib.hourly_price(device['device_kind'], int(device.get('num_devices', 1)))
      if price.usd_per_hour is not None:
        usd, from_table = cost_lib.cost_usd(ttt, price.usd_per_hour), True
    return Entry(
        kind='train', source='dawnjax', task=s['task'], model=s['model'],
        hardware=s.get('hardware_tag') or '?', path=str(path), dataset=s.get('dataset'),
        seeds=int(s['seeds']), metric=metric, accuracy_mean=_num(acc['mean']), accuracy_std=_num(acc.get('std')),
        target=_num(target['threshold']), reached=s.get('reached_target'),
        tta=str(recipe['tta_level']) if 'tta_level' in recipe else None,
        time_to_target_s=ttt, cost_usd=usd, cost_from_table=from_table, mfu=_num(s.get('mfu')),
        throughput=_num(s.get('train_examples_per_second')), partial=bool(s.get('partial')),
        curve=_mean_curve(s.get('per_seed') or [], metric), run_dir=str(path.parent.resolve()))
  except (KeyError, TypeError, ValueError) as err:
    raise ResultsError(f'{path}: dawnjax summary lacks or mangles field {err}') from None


def parse_inference_summary(path: Path) -> Entry:
  s = summary_lib.read_summary(path)
  if s.get('kind') != 'inference':
    raise ResultsError(f"{path}: kind {s.get('kind')!r}, expected 'inference'")
  try:
    model_dir = s.get('model_dir')
    return Entry(
        kind='inference', source='dawnjax', task=s['task'], model=s['model'],
        hardware=s.get('hardware_tag') or '?', path=str(path), dataset=s.get('dataset'),
        metric=s['accuracy_field'], accuracy_mean=_num(s['accuracy']),
        target=_num((s.get('target') or {}).get('threshold')), reached=s.get('qualifies'),
        latency_ms=_num(s['latency_ms']), latency_p99_ms=_num(s.get('latency_p99_ms')),
        cost_usd=_num(s.get('cost_per_item_usd')), throughput=_num(s.get('throughput_items_per_second')),
        run_dir=str(Path(model_dir).parent) if model_dir else None, request=_request(s.get('reported') or {}))
  except (KeyError, TypeError, ValueError) as err:
    raise ResultsError(f'{path}: inference summary lacks or mangles field {err}') from None


def _request(reported: dict[str, Any]) -> str | None:
  """'host_graph (kernel copies), spin': the reported mode, how its copies were made where that was recorded, and
  the wait (older summaries name the mode alone, or nothing). Latencies of different modes are different
  measurements: 'device' leaves out the transfers a 'host*' request makes."""
  mode, wait, copies = reported.get('mode'), reported.get('wait'), reported.get('graph_io_copies')
  if mode and copies:
    mode = f'{mode} ({copies} copies)'
  return f'{mode}, {wait}' if mode and wait else mode


def _load_json(path: Path) -> Any:
  try:
    return json.loads(path.read_text(encoding='utf-8'))
  except OSError as err:
    raise ResultsError(f'{path}: cannot read ({err.strerror or err})') from err
  except ValueError as err:
    raise ResultsError(f'{path}: not valid JSON ({err})') from err


def parse_dawnbench_pair(json_path: Path, tsv_path: Path) -> Entry:
  obj = _load_json(json_path)
  dawnbench.validate_json(obj, kind='training', where=str(json_path))
  rows = dawnbench.parse_tsv(tsv_path)
  task = next(t for t, cols in dawnbench.TSV_COLUMNS.items() if set(cols[2:]) == set(rows[0].metrics)) \
      if rows else None
  if task is None:
    raise ResultsError(f'{tsv_path}: no rows')
  metric, threshold = DAWNBENCH_TARGETS[task]
  crossing = dawnbench.first_crossing(rows, metric, threshold)
  seconds = crossing.hours * 3600.0 if crossing else None
  per_hour = _num(obj.get('costPerHour'))
  misc = obj.get('misc') or {}
  return Entry(
      kind='train', source='DAWNBench file', task=task, model=obj['model'], hardware=obj['hardware'],
      path=str(json_path), dataset=misc.get('dataset') if isinstance(misc.get('dataset'), str) else None,
      metric=metric, accuracy_mean=rows[-1].metrics[metric], target=threshold, reached=crossing is not None,
      time_to_target_s=seconds, cost_usd=per_hour * seconds / 3600.0 if per_hour and seconds else None,
      curve=[(r.hours * 3600.0, r.metrics[metric]) for r in rows])


def parse_dawnbench_inference(path: Path, obj: dict[str, Any]) -> Entry:
  dawnbench.validate_json(obj, kind='inference', where=str(path))
  task = 'squad' if 'f1Score' in obj else 'imagenet' if 'top5Accuracy' in obj else 'cifar10'
  metric = dawnbench.INFERENCE_ACCURACY_FIELD[task]
  accuracy, threshold = _num(obj.get(metric)), DAWNBENCH_TARGETS[task][1]
  return Entry(kind='inference', source='DAWNBench file', task=task, model=obj['model'],
               hardware=obj['hardware'], path=str(path), metric=metric, accuracy_mean=accuracy,
               target=threshold, reached=accuracy is not None and accuracy >= threshold,
               latency_ms=_num(obj['latency']), cost_usd=_num(obj.get('cost')))


def _visible(path: Path, root: Path) -> bool:
  return not any(part.startswith('.') for part in path.relative_to(root).parts)


def scan(dirs: Iterable[str | Path]) -> Scan:
  """Every result under `dirs`; malformed files become one line each in `errors`."""
  entries: list[Entry] = []
  errors: list[str] = []
  seen: set[Path] = set()
  for root in map(Path, dirs):
    if not root.is_dir():
      errors.append(f'{root}: not a directory')
      continue
    for path in sorted(p for p in root.rglob('*.json') if _visible(p, root)):
      if path.resolve() in seen:
        continue
      seen.add(path.resolve())
      folder = path.parent
      try:
        if path.name == TRAIN_SUMMARY:
          entries.append(parse_train_summary(path))
        elif path.name == INFERENCE_SUMMARY:
          entries.append(parse_inference_summary(path))
        elif path.with_suffix('.tsv').is_file():
          if not (folder / TRAIN_SUMMARY).is_file():  # else: dawnjax's own copy of that run
            entries.append(parse_dawnbench_pair(path, path.with_suffix('.tsv')))
        else:
          obj = _load_json(path)
          if isinstance(obj, dict) and 'latency' in obj:
            if not (folder / INFERENCE_SUMMARY).is_file():
              entries.append(parse_dawnbench_inference(path, obj))
          elif isinstance(obj, dict) and obj.get('version') == dawnbench.VERSION and 'author' in obj:
            raise ResultsError(f'{path}: DAWNBench training JSON without its TSV {path.with_suffix(".tsv").name}')
      except ResultsError as err:
        errors.append(str(err))
  return Scan(link_inference(entries), errors)


def link_inference(entries: list[Entry]) -> list[Entry]:
  """Copies an inference result's latency onto the training run whose model it served.

  Linked by the model directory the inference summary names, or, for results copied elsewhere,
  by the inference directory lying inside the run's directory.
  """
  runs = {e.run_dir: e for e in entries if e.kind == 'train' and e.source == 'dawnjax' and e.run_dir}
  for inf in (e for e in entries if e.kind == 'inference' and e.source == 'dawnjax'):
    run = runs.get(inf.run_dir) if inf.run_dir else None
    if run is None:
      parents = [str(p) for p in Path(inf.path).resolve().parents]
      run = next((runs[p] for p in parents if p in runs), None)
    if run is not None:
      run.latency_ms = inf.latency_ms
      run.latency_p99_ms = inf.latency_p99_ms
  return entries


def load_records(path: str | Path = RECORDS) -> list[Entry]:
  """The published DAWNBench records (best entries per task), shipped in report/data/."""
  path = Path(path)
  try:
    text = path.read_text(encoding='utf-8')
  except OSError as err:
    raise ResultsError(f'cannot read DAWNBench records {path}: {err.strerror or err}') from err
  lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith('#')]
  header = lines[0].split('\t') if lines else []
  out = []
  for i, line in enumerate(lines[1:], 2):
    rec = dict(zip(header, line.split('\t')))
    try:
      task = _RECORD_TASKS[rec['task']]
      value = float(rec['seconds_to_target_or_latency_ms'])
      per_hour = float(rec['cost_per_hour_usd']) if rec.get('cost_per_hour_usd') else None
    except (KeyError, ValueError):
      raise ResultsError(f'{path}, record {i}: malformed line {line!r}') from None
    metric, threshold = DAWNBENCH_TARGETS[task]
    common = dict(source='DAWNBench record', task=task, model=rec['model'], hardware=rec['hardware'],
                  path=rec['entry'], dataset=task, metric=metric, target=threshold, reached=True)
    if rec['kind'] == 'train_seconds':
      out.append(Entry(kind='train', time_to_target_s=value,
                       cost_usd=per_hour * value / 3600.0 if per_hour else None, **common))
    else:
      out.append(Entry(kind='inference', latency_ms=value, **common))
  return out


# ------------------------------------------------------------------------------------ tables

def _acc(e: Entry) -> str | None:
  if e.accuracy_mean is None:
    return None
  digits = 4 if e.metric == 'f1Score' else 2
  std = f' ± {e.accuracy_std:.{digits}f}' if e.accuracy_std is not None and (e.seeds or 0) > 1 else ''
  return f'{e.accuracy_mean:.{digits}f}{std}'


def _target(e: Entry) -> str | None:
  if e.target is None:
    return None
  return f"{e.target:g} {'yes' if e.reached else 'NO'}" + (' (partial)' if e.partial else '')


def _cost(e: Entry) -> str | None:
  return None if e.cost_usd is None else f'{e.cost_usd:.4g}' + ('*' if e.cost_from_table else '')


def _key(value: float | None) -> tuple[bool, float]:
  return (value is None, value or 0.0)


def format_leaderboard(entries: Sequence[Entry], records: Sequence[Entry]) -> str:
  """Per task: training ranked by time to target, inference by latency; records beside runs."""
  tasks = sorted({e.task for e in entries} | {e.task for e in records})
  blocks = []
  for task in tasks:
    train = sorted([e for e in [*entries, *records] if e.task == task and e.kind == 'train'],
                   key=lambda e: _key(e.time_to_target_s))
    infer = sorted([e for e in [*entries, *records] if e.task == task and e.kind == 'inference'],
                   key=lambda e: _key(e.latency_ms))
    if train:
      rows = [{'src': e.source, 'model': e.model, 'data': e.dataset, 'hw': e.hardware, 'seeds': e.seeds,
               'acc': _acc(e), 'tta': e.tta, 'target': _target(e), 'ttt': e.time_to_target_s,
               'cost': _cost(e), 'lat': e.latency_ms, 'mfu': e.mfu, 'path': e.path} for e in train]
      cols = [('src', 'source', 's'), ('model', 'model', 's'), ('data', 'dataset', 's'), ('hw', 'hardware', 's'),
              ('seeds', 'seeds', 'd'), ('acc', 'accuracy mean ± std', 's'), ('tta', 'TTA', 's'),
              ('target', 'target reached', 's'), ('ttt', 'time to target s', '.3f'),
              ('cost', 'cost USD', 's'), ('lat', 'latency ms', '.4f'),
              ('mfu', 'MFU', lambda v: f'{100 * v:.1f}%'), ('path', 'file / entry', 's')]
      table = summary_lib.format_table(rows, cols)
      if any(e.cost_from_table for e in train):
        table += '\n* priced from dawnjax/prices.tsv (list price x devices): the run recorded no cost'
      blocks.append(f'== {task}: training (time to target) ==\n' + table)
    if infer:
      rows = [{'src': e.source, 'model': e.model, 'data': e.dataset, 'hw': e.hardware, 'lat': e.latency_ms,
               'p99': e.latency_p99_ms, 'req': e.request or '-', 'acc': _acc(e), 'q': _target(e),
               'cost': e.cost_usd, 'tp': e.throughput, 'path': e.path} for e in infer]
      cols = [('src', 'source', 's'), ('model', 'model', 's'), ('data', 'dataset', 's'), ('hw', 'hardware', 's'),
              ('lat', 'latency ms', '.4f'), ('p99', 'p99 ms', '.4f'), ('req', 'request', 's'),
              ('acc', 'accuracy', 's'),
              ('q', 'target reached', 's'), ('cost', 'USD/item', '.3g'), ('tp', 'items/s', '.0f'),
              ('path', 'file / entry', 's')]
      blocks.append(f'== {task}: inference (batch-1 latency) ==\n' + summary_lib.format_table(rows, cols))
  return '\n\n'.join(blocks)
