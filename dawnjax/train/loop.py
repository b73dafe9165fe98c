"""The one training loop every workload runs under. It alone owns the clock.

Timed region, per seed (stated in every result): `init` (which may use data, e.g. the whitening
layer), every training epoch, and the final evaluation with the workload's reported protocol
(e.g. test-time augmentation); each piece is closed by a device synchronisation before the clock
is read. Outside it, and reported separately: data loading, ahead-of-time compilation (once, for
all seeds) and the per-epoch evaluations that fill the DAWNBench TSV.

With a checkpointer, the time the loop is blocked on saves (and on restoring after a resume) is
inside the timed region and also tallied on its own, so the cost of checkpointing is measured.
"""
from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any, Callable, Protocol

import jax

from dawnjax.workloads.base import FlopCounts, Workload

if TYPE_CHECKING:
  from dawnjax.train.checkpoint import Checkpointer
  from dawnjax.train.executable_cache import ExecutableCache


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
  checkpoint_saves: int = 0
  checkpoint_blocked_seconds: float = 0.0  # timed seconds spent waiting on saves (async overlap excluded)
  restore_seconds: float = 0.0  # timed seconds spent restoring after resumes
  resumed_from_epochs: list[int] = dataclasses.field(default_factory=list)  # one entry per resume
  # The trained state (device arrays), for exporting the model; never serialised. Callers that
  # keep results across seeds should drop it (set None) once used, to free device memory.
  final_state: Any = dataclasses.field(default=None, repr=False, compare=False)


@dataclasses.dataclass(frozen=True)
class Preparation:
  """What `prepare` measured. compile_seconds includes the warm-up execution (first-execution
  costs: module loading, cuDNN/cuBLAS handles), which warm_up_seconds reports on its own too."""
  data_load_seconds: float
  compile_seconds: float
  warm_up_seconds: float
  flops: FlopCounts
  executable_cache: str = 'off'  # 'off' | 'hit' | 'miss, stored' | 'miss, not storable' | 'unsupported'


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


def prepare(workload: Workload, *, epoch_evals: bool = True,
            executable_cache: ExecutableCache | None = None) -> Preparation:
  """Loads data, compiles (or takes the programs from `executable_cache`) and warms up.
  `epoch_evals=False` (no per-epoch evaluation) lets the workload skip compiling that program."""
  start = time.perf_counter()
  workload.load_data()  # may leave its upload running while the programs compile or load
  loaded = time.perf_counter()
  flops, cache_state = _compile(workload, epoch_evals, executable_cache)
  waiting = time.perf_counter()
  workload.wait_for_data()
  compiled = time.perf_counter()
  data_wait = compiled - waiting  # the upload's part that the compile did not hide: data time
  try:
    workload.warm_up()  # first-execution costs belong with compilation, not with seed 0's clock
  except jax.errors.JaxRuntimeError as e:
    if cache_state != 'hit':
      raise
    # A cached executable that does not run here (seen on XLA:CPU): drop it and compile.
    executable_cache.discard(workload.program_fingerprint(epoch_evals=epoch_evals), reason=str(e)[:200])
    flops = workload.compile(epoch_evals=epoch_evals)
    compiled, cache_state = time.perf_counter(), 'hit failed to run, compiled'
    workload.warm_up()
  done = time.perf_counter()
  return Preparation(loaded - start + data_wait, done - loaded - data_wait, done - compiled, flops, cache_state)


def _compile(workload: Workload, epoch_evals: bool,
             cache: ExecutableCache | None) -> tuple[FlopCounts, str]:
  fingerprint = workload.program_fingerprint(epoch_evals=epoch_evals) if cache else None
  if fingerprint is None:
    return workload.compile(epoch_evals=epoch_evals), 'off' if cache is None else 'unsupported'
  if (entry := cache.load_for(fingerprint)) is not None:
    workload.restore_programs(entry.programs)
    return entry.flops, 'hit'
  with cache.watch_jax_cache() as jax_cache:
    flops = workload.compile(epoch_evals=epoch_evals)
  if jax_cache.hits:
    # XLA:CPU executables that JAX's cache deserialised do not survive a second round trip, so
    # only programs this process compiled itself are stored; the next real compile fills it.
    return flops, "miss, not stored (programs came from JAX's cache)"
  stored = cache.store_for(fingerprint, workload.compiled_programs(), flops)
  return flops, 'miss, stored' if stored else 'miss, not storable'


def train_seed(workload: Workload, seed: int, config: LoopConfig,
               listeners: tuple[Listener, ...] = (),
               before_epoch: Callable[[int], None] | None = None,
               checkpointer: Checkpointer | None = None) -> SeedResult:
  """One full timed training of `workload` from `seed`. `before_epoch(epoch)` runs off the clock.

  With `checkpointer`, a seed an earlier run finished is returned from its stored result, and one
  it left mid-way continues from the newest readable checkpoint, exactly as it would have.
  """
  if checkpointer is not None and (done := checkpointer.completed(seed)) is not None:
    for listener in listeners:
      listener.on_seed_end(done)
    return done
  target = workload.target
  timed = Stopwatch()
  records: list[EpochRecord] = []
  untimed_eval = 0.0
  final_metrics: dict[str, float] = {}
  final_eval_seconds = 0.0
  time_to_target = None
  saves, blocked, restore_seconds, resumed_from = 0, 0.0, 0.0, []
  start_epoch = 0
  restored = None
  if checkpointer is not None and checkpointer.config.resume and checkpointer.steps(seed):
    # init gives the restored arrays their shapes and shardings (and sets any per-seed host state).
    restored, restore_seconds = timed.measure(lambda: checkpointer.restore(seed, workload.init(seed)))
  if restored is not None:
    state, meta = restored
    start_epoch = meta['epoch']
    records = [checkpoint_lib().record_from_json(r) for r in meta['records']]
    init_seconds, untimed_eval = meta['init_seconds'], meta['untimed_eval_seconds']
    time_to_target, saves, blocked = meta['time_to_target'], meta['saves'], meta['blocked_seconds']
    restore_seconds += meta['restore_seconds']
    resumed_from = meta['resumed_from_epochs'] + [start_epoch]
    timed.seconds = meta['timed_seconds'] + timed.seconds
  else:
    timed.seconds, restore_seconds = 0.0, 0.0  # a failed restore is not part of this seed's time
    state, init_seconds = timed.measure(lambda: workload.init(seed))
  if checkpointer is not None and checkpointer.config.saving:
    checkpointer.check_space(state)
  last_save = timed.seconds
  for epoch in range(start_epoch, workload.num_epochs):
    if before_epoch is not None:
      before_epoch(epoch)
    (state, train_scalars), epoch_seconds = timed.measure(lambda: workload.train_epoch(state, epoch))
    last = epoch == workload.num_epochs - 1
    metrics: dict[str, float] = {}
    if last:
      if checkpointer is not None:
        # Saves still being written belong to this seed's time.
        _, waited = timed.measure(checkpointer.wait)
        blocked += waited
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
    # After the evaluation, so the checkpoint holds this epoch's record and the asynchronous
    # write overlaps the next (timed) epoch. The last epoch is not saved: the seed's result is.
    if (checkpointer is not None and checkpointer.config.saving and not last
        and checkpointer.should_save(epoch + 1, timed.seconds - last_save)):
      meta = {'timed_seconds': timed.seconds, 'init_seconds': init_seconds,
              'untimed_eval_seconds': untimed_eval, 'time_to_target': time_to_target,
              'saves': saves + 1, 'blocked_seconds': blocked, 'restore_seconds': restore_seconds,
              'resumed_from_epochs': resumed_from,
              'records': [checkpoint_lib().record_to_json(r) for r in records]}
      _, waited = timed.measure(lambda: checkpointer.save(seed, epoch + 1, state, meta))
      saves, blocked, last_save = saves + 1, blocked + waited, timed.seconds
  result = SeedResult(
      seed=seed, epochs=records, final_metrics=final_metrics, timed_seconds=timed.seconds,
      init_seconds=init_seconds, train_seconds=timed.seconds - init_seconds - final_eval_seconds,
      final_eval_seconds=final_eval_seconds, untimed_eval_seconds=untimed_eval,
      reached_target=target.reached(final_metrics[target.metric]), time_to_target=time_to_target,
      checkpoint_saves=saves, checkpoint_blocked_seconds=blocked, restore_seconds=restore_seconds,
      resumed_from_epochs=resumed_from, final_state=state)
  if checkpointer is not None:
    checkpointer.finish_seed(result)
  for listener in listeners:
    listener.on_seed_end(result)
  return result


def checkpoint_lib():
  # Imported on use: checkpoint.py builds on this module's dataclasses.
  from dawnjax.train import checkpoint
  return checkpoint


def run(workload: Workload, config: LoopConfig, listeners: tuple[Listener, ...] = (),
        checkpointer: Checkpointer | None = None) -> RunResult:
  """Prepares once, then trains `config.seeds` independent seeds with the same executables."""
  prep = prepare(workload, epoch_evals=config.eval_every_epoch)
  results = [train_seed(workload, config.base_seed + i, config, listeners, checkpointer=checkpointer)
             for i in range(config.seeds)]
  return RunResult(results, prep.data_load_seconds, prep.compile_seconds, prep.flops)
