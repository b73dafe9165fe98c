"""The one training loop every workload runs under. It alone owns the clock.

Timed region, per seed (stated in every result): `init` (which may use data, e.g. the whitening
layer), every training epoch, and the final evaluation with the workload's reported protocol
(e.g. test-time augmentation); each piece is closed by a device synchronisation before the clock
is read. Outside it, and reported separately: data loading, ahead-of-time compilation (once, for
all seeds) and the per-epoch evaluations that fill the DAWNBench TSV.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Protocol

import jax

from dawnjax.workloads.base import FlopCounts, Workload


@dataclasses.dataclass(frozen=True)
class LoopConfig:
  seeds: int = 1
  base_seed: int = 0
  eval_every_epoch: bool = True


@dataclasses.dataclass
class EpochRecord:
  seed: int
  epoch: int  # 1-based, as DAWNBench numbers them
  timed_seconds: float  # cumulative timed seconds at the end of this epoch
  metrics: dict[str, float]  # evaluation metrics ({} when not evaluated)
  train_loss: float
  epoch_seconds: float
  examples: int
  final: bool  # the reported evaluation protocol was used


@dataclasses.dataclass
class SeedResult:
  seed: int
  epochs: list[EpochRecord]
  final_metrics: dict[str, float]
  timed_seconds: float
  init_seconds: float
  train_seconds: float
  final_eval_seconds: float
  untimed_eval_seconds: float
  reached_target: bool
  time_to_target: float | None  # timed seconds at the first epoch at/over target
  # The trained state (device arrays), for exporting the model; never serialised. Callers that
  # keep results across seeds should drop it (set None) once used, to free device memory.
  final_state: Any = dataclasses.field(default=None, repr=False, compare=False)


@dataclasses.dataclass
class RunResult:
  seeds: list[SeedResult]
  data_load_seconds: float
  compile_seconds: float
  flops: FlopCounts


class Listener(Protocol):
  """Receives results as they happen, so nothing already measured is lost if a later seed dies."""

  def on_epoch(self, record: EpochRecord) -> None: ...

  def on_seed_end(self, result: SeedResult) -> None: ...


class Stopwatch:
  """Accumulates device-synchronised wall time: `with watch.timing(sync_on=lambda: x):`."""

  def __init__(self):
    self.seconds = 0.0

  def measure(self, fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    elapsed = time.perf_counter() - start
    self.seconds += elapsed
    return out, elapsed


def prepare(workload: Workload) -> tuple[float, float, FlopCounts]:
  """Loads data and compiles; returns (data_load_seconds, compile_seconds, flops)."""
  start = time.perf_counter()
  workload.load_data()
  load_seconds = time.perf_counter() - start
  start = time.perf_counter()
  flops = workload.compile()
  return load_seconds, time.perf_counter() - start, flops


def train_seed(workload: Workload, seed: int, config: LoopConfig,
               listeners: tuple[Listener, ...] = (),
               before_epoch: Callable[[int], None] | None = None) -> SeedResult:
  """One full timed training of `workload` from `seed`. `before_epoch(epoch)` runs off the clock."""
  target = workload.target
  timed = Stopwatch()
  state, init_seconds = timed.measure(lambda: workload.init(seed))
  records: list[EpochRecord] = []
  untimed_eval = 0.0
  final_metrics: dict[str, float] = {}
  final_eval_seconds = 0.0
  time_to_target = None
  for epoch in range(workload.num_epochs):
    if before_epoch is not None:
      before_epoch(epoch)
    (state, train_scalars), epoch_seconds = timed.measure(lambda: workload.train_epoch(state, epoch))
    last = epoch == workload.num_epochs - 1
    metrics: dict[str, float] = {}
    if last:
      metrics, final_eval_seconds = timed.measure(lambda: workload.evaluate(state, final=True))
      final_metrics = metrics
    elif config.eval_every_epoch:
      start = time.perf_counter()
      metrics = workload.evaluate(state, final=False)
      untimed_eval += time.perf_counter() - start
    record = EpochRecord(seed, epoch + 1, timed.seconds, metrics,
                         float(train_scalars.get('train_loss', float('nan'))), epoch_seconds,
                         workload.train_examples(epoch), last)
    records.append(record)
    if time_to_target is None and target.metric in metrics and target.reached(metrics[target.metric]):
      time_to_target = timed.seconds
    for listener in listeners:
      listener.on_epoch(record)
  result = SeedResult(
      seed=seed, epochs=records, final_metrics=final_metrics, timed_seconds=timed.seconds,
      init_seconds=init_seconds, train_seconds=timed.seconds - init_seconds - final_eval_seconds,
      final_eval_seconds=final_eval_seconds, untimed_eval_seconds=untimed_eval,
      reached_target=target.reached(final_metrics[target.metric]), time_to_target=time_to_target,
      final_state=state)
  for listener in listeners:
    listener.on_seed_end(result)
  return result


def run(workload: Workload, config: LoopConfig, listeners: tuple[Listener, ...] = ()) -> RunResult:
  """Prepares once, then trains `config.seeds` independent seeds with the same executables."""
  load_seconds, compile_seconds, flops = prepare(workload)
  results = [train_seed(workload, config.base_seed + i, config, listeners) for i in range(config.seeds)]
  return RunResult(results, load_seconds, compile_seconds, flops)
