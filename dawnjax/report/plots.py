"""Leaderboard figures (PNG): accuracy against time per task, and throughput / MFU per run.

matplotlib is imported only here and only when plotting, so the rest of the report works without
it; `MissingMatplotlib` says so in one line.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

from dawnjax.errors import DawnjaxError
from dawnjax.report import atomic
from dawnjax.report.leaderboard import Entry


class MissingMatplotlib(DawnjaxError):
  """Plots were asked for but matplotlib is not installed."""


def _pyplot():
  try:
    import matplotlib
  except ImportError:
    raise MissingMatplotlib('plots skipped: matplotlib is not installed (pip install matplotlib)') from None
  matplotlib.use('Agg')  # files only; no display on a results machine
  import matplotlib.pyplot as plt
  return plt


def _label(e: Entry) -> str:
  return f'{e.model} / {e.hardware}' + (f' / {e.dataset}' if e.dataset else '') + \
      (f' ({e.seeds} seeds)' if e.seeds else '')


def accuracy_vs_time(entries: Sequence[Entry], task: str, path: Path,
                     records: Sequence[Entry] = ()) -> Path | None:
  """Each training run's (mean over seeds) curve, seconds on a log axis, with its target line;
  published records as markers at (their time to target, the target)."""
  runs = [e for e in entries if e.task == task and e.kind == 'train' and e.curve]
  if not runs:
    return None
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(9, 5.5))
  for e in runs:
    xs, ys = zip(*e.curve)
    ax.plot(xs, ys, marker='o', markersize=3, label=_label(e))
  marks = [e for e in records if e.task == task and e.kind == 'train' and e.time_to_target_s and e.target]
  if marks:
    ax.scatter([e.time_to_target_s for e in marks], [e.target for e in marks], marker='x', color='black',
               zorder=3, label='DAWNBench records (time to target)')
  targets = sorted({(e.target, e.dataset) for e in runs if e.target is not None}, key=str)
  for value, dataset in targets:
    ax.axhline(value, linestyle='--', linewidth=1, color='gray')
    ax.annotate(f'target {value:g}' + (f' ({dataset})' if dataset else ''), (0.01, value),
                xycoords=('axes fraction', 'data'), fontsize=8, va='bottom', color='gray')
  ax.set_xscale('log')
  ax.set_xlabel('timed seconds (log)')
  ax.set_ylabel(runs[0].metric or 'metric')
  ax.set_title(f'{task}: accuracy against time')
  ax.grid(True, which='both', alpha=0.3)
  ax.legend(fontsize=7, loc='lower right')
  return _save(fig, plt, path)


def throughput_and_mfu(entries: Sequence[Entry], path: Path) -> Path | None:
  """Bars per dawnjax training run: training examples/s and MFU."""
  runs = [e for e in entries if e.kind == 'train' and e.source == 'dawnjax']
  if not runs:
    return None
  plt = _pyplot()
  names = [f'{Path(e.path).parent.name}\n{e.model}\n{e.hardware}' for e in runs]
  fig, (left, right) = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(runs) + 4), 5))
  left.bar(range(len(runs)), [e.throughput or 0.0 for e in runs], color='tab:blue')
  left.set_ylabel('training examples / s')
  right.bar(range(len(runs)), [100 * (e.mfu or 0.0) for e in runs], color='tab:orange')
  right.set_ylabel('MFU % (0 = unknown)')
  for ax, title in ((left, 'throughput'), (right, 'model FLOPs utilisation')):
    ax.set_xticks(range(len(runs)))
    ax.set_xticklabels(names, fontsize=7)
    ax.set_title(title)
    ax.grid(True, axis='y', alpha=0.3)
  return _save(fig, plt, path)


def _save(fig, plt, path: Path) -> Path:
  buf = io.BytesIO()
  fig.tight_layout()
  fig.savefig(buf, format='png', dpi=110)
  plt.close(fig)
  return atomic.atomic_write_bytes(path, buf.getvalue())  # a reader never sees half a PNG


def write_plots(entries: Sequence[Entry], out_dir: str | Path, records: Sequence[Entry] = ()) -> list[Path]:
  """All figures for `entries` (and `records` as reference marks) into `out_dir`; returns the files."""
  out = Path(out_dir)
  written = [accuracy_vs_time(entries, task, out / f'accuracy_vs_time_{task}.png', records)
             for task in sorted({e.task for e in entries})]
  written.append(throughput_and_mfu(entries, out / 'throughput_mfu.png'))
  return [p for p in written if p is not None]
