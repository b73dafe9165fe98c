"""Turns loop events into files and lines: DAWNBench JSON/TSV, summary JSON, TensorBoard, stdout.

Every file is rewritten atomically after each seed, so a run killed during seed k keeps the
complete results of seeds 0..k-1 and never a half-written file.
"""
from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import os
import platform
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dawnjax import cost as cost_lib, hardware
from dawnjax.errors import DawnjaxError
from dawnjax.report import dawnbench, stats, summary as summary_lib
from dawnjax.report.atomic import atomic_write_text
from dawnjax.report.tensorboard import ScalarWriter
from dawnjax.train.loop import EpochRecord, SeedResult
from dawnjax.workloads.base import FlopCounts, Workload

TIMED_REGION = ('per seed: init (incl. data-dependent init such as whitening) + all training epochs '
                '+ the final evaluation with the reported protocol; each closed by a device '
                'synchronisation. Excluded and reported separately: process start-up, data loading '
                'and upload, ahead-of-time compilation and the workload\'s warm-up execution (once for all '
                'seeds; counted as compile seconds), per-epoch evaluations.')


def check_output_dir(path: str) -> Path:
  """Fails before any training when results could not be written."""
  out = Path(path)
  try:
    out.mkdir(parents=True, exist_ok=True)
    probe = out / '.write_probe'
    probe.write_bytes(b'x' * 4096)
    probe.unlink()
  except OSError as err:
    raise DawnjaxError(f'--output_dir={path} is not writable: {err.strerror or err}') from err
  return out


# Module name -> distribution name, for the versions every result records.
_VERSIONED = {'jax': 'jax', 'jaxlib': 'jaxlib', 'flax': 'flax', 'optax': 'optax',
              'orbax.checkpoint': 'orbax-checkpoint', 'numpy': 'numpy'}


def software_versions() -> dict[str, str]:
  """Versions of the stack a result ran on: an imported module's own, else its installed distribution's
  (importing orbax only to read its version cost ~0.25 s of every run's wall time)."""
  versions = {'python': platform.python_version()}
  for name, distribution in _VERSIONED.items():
    module = sys.modules.get(name)
    if module is not None:
      versions[name] = getattr(module, '__version__', 'unknown')
      continue
    try:
      versions[name] = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
      continue
  return versions


@dataclasses.dataclass
class RunInfo:
  """What the reporter needs besides the workload: fixed once data is loaded and compiled."""
  output_dir: Path
  device: dict[str, Any]  # parallel.device_description
  flags: dict[str, Any]
  data_load_seconds: float
  compile_seconds: float
  flops: FlopCounts
  wall_clock_start: float  # time.time() at process start
  author: str = 'dawnjax'
  author_email: str = 'dawnjax@users.noreply.github.com'
  code_url: str | None = None
  cost_per_hour: float | None = None
  notes: str = ''
  checkpointing: dict[str, Any] | None = None  # checkpoint.CheckpointConfig.as_dict(); None = off
  warm_up_seconds: float = 0.0  # the part of compile_seconds that executed each program once
  startup_seconds: float | None = None  # process start -> the run began (imports, flags, backend)
  executable_cache: str = 'off'  # loop.Preparation.executable_cache


class RunReporter:
  """A `loop.Listener` that writes all outputs of one run (possibly many seeds)."""

  def __init__(self, workload: Workload, info: RunInfo, *, clock: Callable[[], float],
               print_fn: Callable[[str], None] = print, tensorboard: bool = True):
    self.workload = workload
    self.info = info
    self.clock = clock
    self.print = print_fn
    self.results: list[SeedResult] = []
    self.baseline: list[SeedResult] = []  # the same seeds with checkpointing off (--checkpoint_baseline)
    self._tb = tensorboard
    self._writer: ScalarWriter | None = None
    self._writer_seed: int | None = None
    self.peak_tflops, self.peak_source = hardware.peak_tflops(info.device['device_kind'])
    self.hw_tag = hardware.hardware_tag(info.device['device_kind'], info.device['num_devices'])

  # ------------------------------------------------------------------ events
  def on_epoch(self, record: EpochRecord) -> None:
    metric = self.workload.target.metric
    value = record.metrics.get(metric)
    shown = f'{value:7.2f}' if value is not None else '      -'
    throughput = record.examples / record.epoch_seconds if record.epoch_seconds > 0 else 0.0
    self.print(f'seed {record.seed:3d} | epoch {record.epoch:3d} | loss {record.train_loss:7.4f} | '
               f'{metric} {shown}{" (final protocol)" if record.final else ""} | '
               f'epoch {record.epoch_seconds:7.3f} s | timed {record.timed_seconds:8.3f} s | '
               f'{throughput:10.0f} ex/s')
    writer = self._seed_writer(record.seed)
    if writer is not None:
      scalars = {'train/loss': record.train_loss, 'train/epoch_seconds': record.epoch_seconds,
                 'train/examples_per_second': throughput, 'time/timed_seconds': record.timed_seconds}
      scalars.update({f'eval/{k}': v for k, v in record.metrics.items()})
      scalars.update(self.workload.schedule_scalars(record.epoch - 1))
      writer.scalars(scalars, record.epoch)
      writer.flush()

  def on_seed_end(self, result: SeedResult) -> None:
    self.results.append(result)
    self.write(partial=True)

  def _seed_writer(self, seed: int) -> ScalarWriter | None:
    if not self._tb:
      return None
    if self._writer_seed != seed:
      if self._writer is not None:
        self._writer.close()
      self._writer = ScalarWriter(self.info.output_dir / 'tensorboard' / f'seed_{seed}')
      self._writer.text('flags', '\n'.join(f'{k} = {v}' for k, v in sorted(self.info.flags.items())))
      self._writer_seed = seed
    return self._writer

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
      self._writer = None

  # ------------------------------------------------------------------ files
  def hourly_price(self) -> cost_lib.HourlyPrice:
    """--cost_per_hour when given, else the price table's figure for this device x devices."""
    return cost_lib.hourly_price(self.info.device['device_kind'], self.info.device['num_devices'],
                                 self.info.cost_per_hour)

  def basename(self) -> str:
    return dawnbench.result_basename(self.info.author, self.workload.model_name, self.hw_tag, 'JAX')

  def mean_rows(self) -> list[dawnbench.EpochRow]:
    """Per-epoch mean over seeds: the DAWNBench TSV of the run (hours = mean timed hours)."""
    metric = self.workload.target.metric
    rows = []
    n_epochs = min(len(r.epochs) for r in self.results)
    for i in range(n_epochs):
      recs = [r.epochs[i] for r in self.results]
      if not all(metric in rec.metrics for rec in recs):
        continue
      metrics = {}
      for name in dawnbench.TSV_COLUMNS[self.workload.task][2:]:
        values = [rec.metrics.get(name, float('nan')) for rec in recs]
        metrics[name] = float(np.mean(values))
      hours = float(np.mean([rec.timed_seconds for rec in recs])) / 3600.0
      rows.append(dawnbench.EpochRow(recs[0].epoch, hours, metrics))
    return rows

  def seed_rows(self, result: SeedResult) -> list[dawnbench.EpochRow]:
    names = dawnbench.TSV_COLUMNS[self.workload.task][2:]
    return [dawnbench.EpochRow(rec.epoch, rec.timed_seconds / 3600.0, {n: rec.metrics[n] for n in names})
            for rec in result.epochs if all(n in rec.metrics for n in names)]

  def summary(self, *, partial: bool) -> dict[str, Any]:
    wl = self.workload
    target = wl.target
    finals = [r.final_metrics[target.metric] for r in self.results]
    timed = [r.timed_seconds for r in self.results]
    acc = stats.summarize(finals)
    mean_reached = target.reached(acc['mean'])
    rows = self.mean_rows()
    crossing = dawnbench.first_crossing(rows, target.metric, target.threshold, target.higher_is_better)
    train_examples = sum(wl.train_examples(e) for e in range(wl.num_epochs))
    train_seconds = float(np.mean([r.train_seconds for r in self.results]))
    mean_timed = float(np.mean(timed))
    flops = self.info.flops
    run_flops = flops.train_per_example * train_examples + flops.eval_per_example * wl.eval_examples()
    achieved = run_flops / mean_timed / 1e12 if mean_timed > 0 else 0.0
    n_dev = self.info.device['num_devices']
    mfu = achieved / (self.peak_tflops * n_dev) if self.peak_tflops and run_flops else None
    price = self.hourly_price()
    cost = None
    if price.usd_per_hour is not None:
      ttt = crossing.hours * 3600.0 if crossing else None
      cost = {'cost_per_hour_usd': price.usd_per_hour, 'price_source': price.source,
              'price': price.as_dict(),
              'time_to_target_cost_usd': cost_lib.cost_usd(ttt, price.usd_per_hour) if ttt is not None else None,
              'timed_training_cost_usd': cost_lib.cost_usd(mean_timed, price.usd_per_hour),
              'rule': 'USD = seconds / 3600 x USD per hour of all devices used (DAWNBench: time to target)'}
    wall = self.clock() - self.info.wall_clock_start
    return {
        'partial': partial,
        'task': wl.task,
        'dataset': wl.dataset_name,
        'model': wl.model_name,
        'target': {'metric': target.metric, 'threshold': target.threshold,
                   'rule': 'mean over seeds of the final evaluation >= threshold'},
        'reached_target': bool(mean_reached),
        'seeds': len(self.results),
        'accuracy': acc,
        'timed_seconds': stats.summarize(timed),
        'time_to_target_seconds': crossing.hours * 3600.0 if crossing else None,
        'time_to_target_epoch': crossing.epoch if crossing else None,
        'time_to_target_rule': 'first epoch whose mean-over-seeds metric reaches the target; '
                               'its mean timed seconds',
        'seeds_reaching_target': sum(r.reached_target for r in self.results),
        'resumed': any(r.resumed_from_epochs for r in self.results),
        'checkpointing': self.checkpointing_summary(),
        'timed_region': TIMED_REGION,
        'data_load_seconds': self.info.data_load_seconds,
        'compile_seconds': self.info.compile_seconds,
        'executable_cache': self.info.executable_cache,
        'untimed_eval_seconds_per_seed': float(np.mean([r.untimed_eval_seconds for r in self.results])),
        'wall_seconds': wall,
        'wall_rule': 'process start to this summary, everything included',
        'wall_breakdown_seconds': self.wall_breakdown(wall),
        'breakdown_seconds_mean': {
            'init': float(np.mean([r.init_seconds for r in self.results])),
            'train': train_seconds,
            'final_eval': float(np.mean([r.final_eval_seconds for r in self.results])),
        },
        'train_examples_per_run': train_examples,
        'train_examples_per_second': train_examples / train_seconds if train_seconds > 0 else None,
        'flops': {'train_per_example': flops.train_per_example, 'eval_per_example': flops.eval_per_example,
                  'per_run': run_flops, 'source': 'jaxpr count of conv/matmul FLOPs (dawnjax/flops.py), one train step / one eval forward'},
        'achieved_tflops': achieved,
        'peak_tflops_per_device': self.peak_tflops,
        'peak_source': self.peak_source,
        'mfu': mfu,
        'cost': cost,
        'device': self.info.device,
        'hardware_tag': self.hw_tag,
        'versions': software_versions(),
        'flags': self.info.flags,
        'xla_flags_env': os.environ.get('XLA_FLAGS', ''),  # compiler settings as the backend saw them
        'jax_client_env': {k: v for k, v in os.environ.items() if k.startswith('XLA_PYTHON_CLIENT_')},
        'workload': wl.describe(),
        'notes': self.info.notes,
        'per_seed': [{'seed': r.seed, 'final': r.final_metrics, 'timed_seconds': r.timed_seconds,
                      'time_to_target_seconds': r.time_to_target, 'reached_target': r.reached_target,
                      'epochs': [{'epoch': e.epoch, 'timed_seconds': e.timed_seconds, 'metrics': e.metrics,
                                  'train_loss': e.train_loss, 'epoch_seconds': e.epoch_seconds}
                                 for e in r.epochs]}
                     for r in self.results],
    }

  def wall_breakdown(self, wall: float) -> dict[str, float | None]:
    """Where the wall seconds went; 'seeds_and_reporting' is the remainder (training, evaluations,
    checkpoints, writing results)."""
    info = self.info
    parts = {'startup': info.startup_seconds, 'data_load': info.data_load_seconds,
             'compile_programs': info.compile_seconds - info.warm_up_seconds, 'warm_up': info.warm_up_seconds}
    parts['seeds_and_reporting'] = wall - sum(v for v in parts.values() if v is not None)
    return parts

  def checkpointing_summary(self) -> dict[str, Any]:
    """Cost of checkpointing from this run, and the checkpoint-off run when there is one."""
    cfg = self.info.checkpointing or {}
    timed = [r.timed_seconds for r in self.results]
    blocked = [r.checkpoint_blocked_seconds for r in self.results]
    restore = [r.restore_seconds for r in self.results]
    out = {
        'enabled': bool(cfg.get('every_epochs') or cfg.get('every_seconds')),
        'every_epochs': cfg.get('every_epochs', 0), 'every_seconds': cfg.get('every_seconds', 0.0),
        'keep': cfg.get('keep'), 'directory': cfg.get('directory'),
        'saves_per_seed': float(np.mean([r.checkpoint_saves for r in self.results])),
        'blocked_seconds_per_seed': stats.summarize(blocked),
        'timed_seconds_with_checkpointing': stats.summarize(timed),
        'timed_seconds_minus_blocked': stats.summarize([t - b - r for t, b, r in zip(timed, blocked, restore)]),
        'minus_blocked_rule': 'timed seconds less the time the loop waited on checkpoint saves and '
                              'restores; asynchronous writes that overlap training are still in it',
        'resumed': any(r.resumed_from_epochs for r in self.results),
        'resumed_seeds': [{'seed': r.seed, 'from_epochs': r.resumed_from_epochs,
                           'restore_seconds': r.restore_seconds}
                          for r in self.results if r.resumed_from_epochs],
        'resume_rule': 'a resumed seed counts the timed seconds of the run(s) up to the checkpoint it '
                       'resumed from plus the restore and the rest; work lost after that checkpoint '
                       'is not counted',
        'without_checkpointing': None,
    }
    if self.baseline:
      base = [r.timed_seconds for r in self.baseline]
      out['without_checkpointing'] = {
          'timed_seconds': stats.summarize(base),
          'accuracy': stats.summarize([r.final_metrics[self.workload.target.metric] for r in self.baseline]),
          'per_seed': [{'seed': r.seed, 'timed_seconds': r.timed_seconds} for r in self.baseline],
          'overhead_seconds_mean': float(np.mean(timed) - np.mean(base)),
          'rule': 'the same seeds and executables trained again in this process with checkpointing off',
      }
    return out

  def write(self, *, partial: bool) -> dict[str, Any]:
    out = self.info.output_dir
    summary = self.summary(partial=partial)
    for result in self.results:
      rows = self.seed_rows(result)
      if rows:
        text = dawnbench.format_tsv(self.workload.task, rows)
        atomic_write_text(out / 'seeds' / f'seed_{result.seed}.tsv', text)
    rows = self.mean_rows()
    if rows:
      misc = {k: summary[k] for k in ('dataset', 'seeds', 'accuracy', 'timed_seconds', 'time_to_target_seconds',
                                      'reached_target', 'compile_seconds', 'data_load_seconds', 'wall_seconds',
                                      'timed_region', 'mfu', 'cost', 'partial', 'resumed')}
      ckpt = summary['checkpointing']
      if ckpt['enabled']:
        misc['checkpointing'] = summary_lib.jsonable(
            {k: ckpt[k] for k in ('every_epochs', 'every_seconds', 'blocked_seconds_per_seed',
                                  'timed_seconds_minus_blocked', 'without_checkpointing')})
      misc = summary_lib.jsonable(misc)  # NaN (e.g. the CI of one seed) is not valid JSON
      misc['tsv'] = 'per-epoch mean over seeds; hours = mean timed hours; per-seed TSVs in seeds/'
      hardware_text = f"{self.info.device['num_devices']}x {self.info.device['device_kind']}"
      json_obj = dawnbench.training_json(
          author=self.info.author, author_email=self.info.author_email, framework=f"JAX {summary['versions'].get('jax', '')}".strip(),
          model=self.workload.model_name, hardware=hardware_text,
          timestamp=datetime.date.today(), cost_per_hour=self.hourly_price().usd_per_hour,
          code_url=self.info.code_url, misc=misc)
      dawnbench.write_training_result(out, task=self.workload.task, rows=rows, json_obj=json_obj,
                                      basename=self.basename())
    summary_lib.write_summary(out / 'summary.json', summary)
    return summary

  def finish(self) -> dict[str, Any]:
    self.close()
    summary = self.write(partial=False)
    self.print(final_table(summary))
    return summary


def final_table(summary: dict[str, Any]) -> str:
  acc, timed = summary['accuracy'], summary['timed_seconds']
  metric = summary['target']['metric']
  row = {
      'dataset': summary['dataset'], 'model': summary['model'], 'hw': summary['hardware_tag'],
      'seeds': summary['seeds'],
      'acc': f"{acc['mean']:.2f} ± {acc['std']:.2f}",
      'ci': f"[{acc['ci95_low']:.2f}, {acc['ci95_high']:.2f}]" if acc['n'] > 1 else '-',
      'target': f"{summary['target']['threshold']:g} {'yes' if summary['reached_target'] else 'NO'}",
      'timed': f"{timed['mean']:.3f} ± {timed['std']:.3f}",
      'compile': summary['compile_seconds'], 'load': summary['data_load_seconds'],
      'wall': summary['wall_seconds'],
      'mfu': f"{100 * summary['mfu']:.1f}%" if summary['mfu'] else '-',
  }
  ckpt = summary.get('checkpointing') or {}
  if ckpt.get('enabled') or ckpt.get('resumed'):
    extra = [f"checkpointed{' (resumed)' if ckpt.get('resumed') else ''}",
             f"blocked {ckpt['blocked_seconds_per_seed']['mean']:.3f} s/seed"]
    if ckpt.get('without_checkpointing'):
      extra.append(f"without checkpointing {ckpt['without_checkpointing']['timed_seconds']['mean']:.3f} s")
    row['timed'] += ' [' + ', '.join(extra) + ']'

  columns = [('dataset', 'dataset', 's'), ('model', 'model', 's'), ('hw', 'hardware', 's'),
             ('seeds', 'seeds', 'd'), ('acc', f'{metric} mean ± std', 's'), ('ci', '95% CI', 's'),
             ('target', 'target reached', 's'), ('timed', 'timed s', 's'), ('compile', 'compile s', '.1f'),
             ('load', 'data s', '.1f'), ('wall', 'wall s', '.1f'), ('mfu', 'MFU', 's')]
  return summary_lib.format_table([row], columns)
