"""Where a run's seconds outside the timed region go: a host trace of one whole experiment process.

The summary's `wall_breakdown_seconds` says how long data load, program loading, warm-up and the
seeds took; this says what the host and the GPU did inside each. It runs an entry point unchanged,
with a jax.profiler trace from the moment the workload starts (the backend is already up: the trace
cannot start earlier) to the end, and a named annotation around each stage:

  python kernels/warm_start_trace.py run --trace_dir=DIR -- --flagfile=experiments/cifar10/fast.flags \
      --data_dir=... --output_dir=... --compilation_cache_dir=...
  python kernels/warm_start_trace.py summary --trace_dir=DIR [--top=12]

With Python frames on (the default) a cold run's tracing and lowering fill the profiler's event buffer, so
the stages after them are missing: trace a cold run with --no-python_frames.

The summary lists each stage's wall time, the GPU's busy time inside it, and the host events that
start inside it by self time (all threads, summed by name; the profiler's Python tracer names
Python frames `$file:line function`): time spent importing, loading modules, building cuDNN plans,
allocating, launching, or waiting for the GPU. The profiler adds its own cost; read shares, not seconds.
"""
from __future__ import annotations

import argparse
import collections
import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import latency_trace  # noqa: E402
import trace_summary  # noqa: E402

PREFIX = 'stage/'


def annotate(owner, name: str, label: str) -> None:
  """Wraps owner.name so each call is one `stage/label` span in the trace."""
  import jax
  inner = getattr(owner, name)

  @functools.wraps(inner)
  def wrapped(*args, **kwargs):
    with jax.profiler.TraceAnnotation(PREFIX + label):
      return inner(*args, **kwargs)

  setattr(owner, name, wrapped)


def run(trace_dir: str, entry: str, argv: list[str], python_frames: bool = True) -> None:
  import importlib

  import jax

  from dawnjax.experiments import runner
  from dawnjax.train import executable_cache, loop, reporting
  module = importlib.import_module(f'dawnjax.experiments.{entry}')
  workload_cls = {'cifar10': 'dawnjax.workloads.cifar10:Cifar10Workload',
                  'imagenet': 'dawnjax.workloads.imagenet:ImageNetWorkload'}[entry]
  mod, cls = workload_cls.split(':')
  workload = getattr(importlib.import_module(mod), cls)
  for method in ('load_data', 'restore_programs', 'compile', 'warm_up', 'init', 'train_epoch', 'evaluate'):
    if hasattr(workload, method):
      annotate(workload, method, method)
  annotate(executable_cache.ExecutableCache, 'load', 'executable_cache.load')
  annotate(loop, 'train_seed', 'train_seed')
  annotate(reporting.RunReporter, 'finish', 'reporter.finish')
  annotate(reporting.RunReporter, 'on_epoch', 'reporter.on_epoch')
  annotate(reporting.RunReporter, 'on_seed_end', 'reporter.on_seed_end')
  original = runner.run_workload

  def traced(*args, **kwargs):
    options = jax.profiler.ProfileOptions()
    options.host_tracer_level = 2
    options.python_tracer_level = 1 if python_frames else 0
    jax.profiler.start_trace(trace_dir, create_perfetto_trace=True, profiler_options=options)
    try:
      with jax.profiler.TraceAnnotation(PREFIX + 'run_workload'):
        return original(*args, **kwargs)
    finally:
      jax.profiler.stop_trace()

  runner.run_workload = traced
  sys.argv = [entry] + argv
  module.main()


def self_times(events: list[dict]) -> list[tuple[dict, float]]:
  """Each event with its self time: its duration less that of the events nested in it on its thread."""
  out = []
  by_thread = collections.defaultdict(list)
  for e in events:
    by_thread[(e['pid'], e['tid'])].append(e)
  for thread in by_thread.values():
    thread.sort(key=lambda e: (e['ts'], -e['dur']))
    stack: list[list] = []  # [event, self time]
    for e in thread:
      while stack and stack[-1][0]['ts'] + stack[-1][0]['dur'] <= e['ts']:
        out.append(tuple(stack.pop()))
      if stack:
        stack[-1][1] -= min(e['dur'], stack[-1][0]['ts'] + stack[-1][0]['dur'] - e['ts'])
      stack.append([e, float(e['dur'])])
    out.extend(tuple(s) for s in stack)
  return out


def stage_table(events: list[dict], top: int) -> str:
  host, kernels = latency_trace.host_and_device(events)
  stages = sorted((e for e in host if e['name'].startswith(PREFIX)), key=lambda e: e['ts'])
  others = sorted(self_times([e for e in host if not e['name'].startswith(PREFIX)]), key=lambda p: p[0]['ts'])
  kernels = sorted(kernels, key=lambda e: e['ts'])
  totals = collections.defaultdict(lambda: [0, 0.0, 0.0, collections.Counter()])
  for s in stages:
    lo, hi = s['ts'], s['ts'] + s['dur']
    row = totals[s['name'][len(PREFIX):]]
    row[0] += 1
    row[1] += s['dur']
    row[2] += trace_summary.busy_microseconds([k for k in kernels if lo <= k['ts'] < hi])
    for e, own in others:
      if lo <= e['ts'] < hi:
        row[3][e['name']] += own
  lines = [f'{"stage":28s} {"calls":>5s} {"wall ms":>9s} {"GPU busy ms":>11s}   host events starting inside, by '
           f'self time (all threads, ms; Python frames start with $)']
  for name, (calls, wall, busy, inside) in totals.items():
    lines.append(f'{name:28s} {calls:5d} {wall / 1e3:9.1f} {busy / 1e3:11.1f}')
    for event, us in inside.most_common(top):
      lines.append(f'{"":48s} {us / 1e3:8.1f}  {event[:90]}')
  return '\n'.join(lines)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('mode', choices=('run', 'summary'))
  p.add_argument('--trace_dir', required=True)
  p.add_argument('--entry', default='cifar10', choices=('cifar10', 'imagenet'))
  p.add_argument('--top', type=int, default=12)
  p.add_argument('--python_frames', action=argparse.BooleanOptionalAction, default=True,
                 help="record every Python call as a host event (names where Python time goes); a cold run's "
                      'tracing and lowering then overflow the profiler\'s event buffer and the later stages are lost: '
                      'use --no-python_frames for a cold run')
  args, rest = p.parse_known_args()
  if args.mode == 'run':
    run(args.trace_dir, args.entry, [a for a in rest if a != '--'], args.python_frames)
  else:
    print(stage_table(trace_summary.load_events(args.trace_dir), args.top))


if __name__ == '__main__':
  main()
