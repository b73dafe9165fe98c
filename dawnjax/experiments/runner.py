"""Runs any workload under the shared loop with the common flags: the body of every entry point."""
from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from absl import flags

from dawnjax import parallel
from dawnjax.errors import ConfigError, TargetNotReached
from dawnjax.experiments import common
from dawnjax.train import checkpoint, loop, reporting
from dawnjax.workloads.base import Workload

FLAGS = flags.FLAGS


def parse_profile_epochs(spec: str | None, flag: str = 'profile_epochs') -> tuple[int, int] | None:
  """'START:END' (1-based, inclusive) -> (start, end); None when profiling is off."""
  if not spec:
    return None
  try:
    start, end = (int(v) for v in spec.split(':'))
  except ValueError:
    raise ConfigError(f'--{flag}={spec!r}: expected START:END, e.g. 2:3') from None
  if start < 1 or end < start:
    raise ConfigError(f'--{flag}={spec!r}: need 1 <= START <= END')
  return start, end


def epochs_of_steps(workload: Workload, steps: tuple[int, int]) -> tuple[int, int]:
  """The 1-based epochs holding global training steps START..END (1-based, inclusive)."""
  first, last, done = None, None, 0
  for epoch in range(workload.num_epochs):
    lo, done = done + 1, done + workload.train_steps(epoch)
    if first is None and steps[0] <= done:
      first = epoch + 1
    if lo <= steps[1]:
      last = epoch + 1
  if first is None:
    raise ConfigError(f'--profile_steps={steps[0]}:{steps[1]}: the run has only {done} training steps')
  return first, last


def profile_flags() -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
  """(--profile_epochs, --profile_steps) parsed; checked before any data is loaded or compiled."""
  if FLAGS.profile_epochs and FLAGS.profile_steps:
    raise ConfigError('give --profile_epochs or --profile_steps, not both')
  return parse_profile_epochs(FLAGS.profile_epochs), parse_profile_epochs(FLAGS.profile_steps, 'profile_steps')


def profile_window(workload: Workload, epochs: tuple[int, int] | None,
                   steps: tuple[int, int] | None) -> tuple[int, int] | None:
  """The epochs to trace: --profile_epochs, or the epochs that hold the --profile_steps."""
  if steps is None:
    return epochs
  window = epochs_of_steps(workload, steps)
  print(f'--profile_steps={steps[0]}:{steps[1]}: tracing epochs {window[0]}..{window[1]} of the first seed, '
        'which hold those steps (the loop dispatches whole epochs)', flush=True)
  return window


class ProfileWindow:
  """A `loop.Listener` that brackets epochs START..END of the first seed with a jax.profiler trace.

  The trace lands in output_dir/tensorboard/profile (TensorBoard's profile plugin reads it).
  Profiling perturbs timing, so the summary records that it was on.
  """

  def __init__(self, window: tuple[int, int], logdir: str):
    self.start, self.end = window
    self.logdir = logdir
    self._active = False
    self._done = False

  def before_epoch(self, seed_index: int, epoch: int) -> None:
    import jax
    if not self._done and not self._active and seed_index == 0 and epoch + 1 == self.start:
      # The perfetto JSON beside the xplane lets kernels/trace_summary.py read it without TensorBoard.
      jax.profiler.start_trace(self.logdir, create_perfetto_trace=True)
      self._active = True

  def on_epoch(self, record: loop.EpochRecord) -> None:
    import jax
    if self._active and record.epoch >= self.end:
      jax.profiler.stop_trace()
      self._active = False
      self._done = True

  def on_seed_end(self, result: loop.SeedResult) -> None:
    self.on_epoch(loop.EpochRecord(result.seed, 10**9, 0, {}, 0, 0, 0, True))


def export_first_model(workload: Workload, result: loop.SeedResult, out, info: reporting.RunInfo) -> None:
  """Saves the first seed's trained model to out/model, between seeds (off every clock).

  Right after the seed rather than after all of them, so only one extra state is ever held and a
  run killed in a later seed still leaves a model to benchmark.
  """
  from dawnjax.inference import export
  start = time.perf_counter()
  meta = {'seed': result.seed, 'device': info.device, 'flags': info.flags,
          'versions': reporting.software_versions(), 'time_to_target_seconds': result.time_to_target}
  path = export.export_trained(workload, result.final_state, out / export.RUN_SUBDIR, seed=result.seed,
                               final_metrics=result.final_metrics, meta=meta)
  if path is None:
    print(f'model export: {workload.task} has no inference model yet; skipped', flush=True)
  else:
    print(f'model export: seed {result.seed} saved to {path} in {time.perf_counter() - start:.1f} s '
          '(untimed)', flush=True)


def make_checkpointer(workload: Workload, out) -> checkpoint.Checkpointer | None:
  """The run's checkpointer (None when neither saving nor resuming); fails before any work."""
  config = checkpoint.CheckpointConfig(
      directory=str(out / checkpoint.SUBDIR), every_epochs=FLAGS.checkpoint_every_epochs,
      every_seconds=FLAGS.checkpoint_every_seconds, keep=FLAGS.keep, resume=FLAGS.resume)
  config.validate()
  existing = checkpoint.has_checkpoints(config.directory)
  if existing and not FLAGS.resume:
    raise ConfigError(f'{config.directory} holds checkpoints of an earlier run and --noresume was given; '
                      'drop --noresume to continue it, or use another --output_dir')
  if not (config.saving or existing):
    return None
  return checkpoint.Checkpointer(config, workload, log=lambda s: print(s, flush=True))


def executable_cache():
  """The on-disk cache of compiled programs, where --compilation_cache_dir asks for a warm start."""
  if not (FLAGS.compilation_cache_dir and FLAGS.executable_cache):
    return None
  from dawnjax.train.executable_cache import ExecutableCache
  return ExecutableCache(os.path.join(FLAGS.compilation_cache_dir, 'dawnjax_executables'))


def run_workload(workload: Workload, mesh, *, start_time: float) -> dict[str, Any]:
  """Loads, compiles, trains --seeds seeds, writes every output; returns the summary.

  Raises TargetNotReached (after writing everything) when the mean misses the target.
  """
  startup_s = time.time() - start_time
  out = reporting.check_output_dir(FLAGS.output_dir)
  profile_epochs, profile_steps = profile_flags()
  checkpointer = make_checkpointer(workload, out)
  prep = loop.prepare(workload, epoch_evals=FLAGS.eval_every_epoch, executable_cache=executable_cache())
  load_s, compile_s, flops = prep.data_load_seconds, prep.compile_seconds, prep.flops
  device = parallel.device_description(mesh)
  print(f'{workload.dataset_name} on {device["num_devices"]}x {device["device_kind"]}: start-up {startup_s:.1f} s, '
        f'data {load_s:.1f} s, compile {compile_s:.1f} s (warm-up {prep.warm_up_seconds:.1f}; executable cache '
        f'{prep.executable_cache}); {workload.num_epochs} epochs; target {workload.target.metric} >= '
        f'{workload.target.threshold:g}', flush=True)
  window = profile_window(workload, profile_epochs, profile_steps)
  notes = FLAGS.notes + (' [profiler on: timings perturbed]' if window else '')
  info = reporting.RunInfo(
      output_dir=out, device=device, flags=common.flag_values(), data_load_seconds=load_s,
      compile_seconds=compile_s, flops=flops, wall_clock_start=start_time, author=FLAGS.author,
      author_email=FLAGS.author_email, cost_per_hour=FLAGS.cost_per_hour, notes=notes,
      checkpointing=checkpointer.config.as_dict() if checkpointer else None,
      warm_up_seconds=prep.warm_up_seconds, startup_seconds=startup_s, executable_cache=prep.executable_cache)
  reporter = reporting.RunReporter(workload, info, clock=time.time,
                                   print_fn=lambda s: print(s, flush=True), tensorboard=FLAGS.tensorboard)
  listeners: tuple[Any, ...] = (reporter,)
  profiler = ProfileWindow(window, str(out / 'tensorboard' / 'profile')) if window else None
  if profiler:
    listeners = (profiler, reporter)
  config = loop.LoopConfig(seeds=FLAGS.seeds, base_seed=FLAGS.seed, eval_every_epoch=FLAGS.eval_every_epoch)
  with contextlib.ExitStack() as stack:
    stack.callback(reporter.close)
    if checkpointer:
      stack.callback(checkpointer.close)
    for i in range(config.seeds):
      before = (lambda epoch, i=i: profiler.before_epoch(i, epoch)) if profiler else None
      result = loop.train_seed(workload, config.base_seed + i, config, listeners, before_epoch=before,
                               checkpointer=checkpointer)
      if i == 0 and FLAGS.export_model:
        if result.final_state is None:
          print(f'model export: seed {result.seed} was finished by an earlier run; kept its export',
                flush=True)
        else:
          export_first_model(workload, result, out, info)
      result.final_state = None  # the reporter keeps every result; the states need not stay on device
    if FLAGS.checkpoint_baseline:
      # The same seeds and executables with checkpointing off: the measured "without" figure.
      for i in range(config.seeds):
        result = loop.train_seed(workload, config.base_seed + i, config)
        result.final_state = None
        print(f'seed {result.seed:3d} | without checkpointing: timed {result.timed_seconds:8.3f} s', flush=True)
        reporter.baseline.append(result)
  summary = reporter.finish()
  if not summary['reached_target']:
    acc = summary['accuracy']
    raise TargetNotReached(
        f"target not reached: mean {workload.target.metric} {acc['mean']:.4g} < {workload.target.threshold:g} "
        f"over {summary['seeds']} seed(s); results written to {out}")
  return summary
