"""Runs an experiment entry point and prints a line for each slow Python garbage collection.

Shows whether a collection lands inside a seed's epochs (the loop's epoch lines are printed in the
same stream, so a `gc:` line sits between the epochs it fell between or inside):

  python kernels/gc_log_run.py [--min_ms=5] -- --flagfile=experiments/cifar10/fast.flags --data_dir=... --seeds=20
"""
from __future__ import annotations

import argparse
import gc
import sys
import time


def install(min_ms: float) -> None:
  started: dict[str, float] = {}

  def callback(phase: str, info: dict) -> None:
    if phase == 'start':
      started['t'] = time.perf_counter()
      return
    ms = (time.perf_counter() - started.get('t', time.perf_counter())) * 1e3
    if ms >= min_ms or info['generation'] == 2:
      print(f"gc: generation {info['generation']} collection {ms:.1f} ms, {info['collected']} collected, "
            f'{gc.get_freeze_count()} objects frozen', flush=True)

  gc.callbacks.append(callback)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--min_ms', type=float, default=5.0, help='also print younger collections at least this long')
  p.add_argument('--entry', default='cifar10', choices=('cifar10', 'imagenet', 'squad'))
  args, rest = p.parse_known_args()
  install(args.min_ms)
  import importlib
  module = importlib.import_module(f'dawnjax.experiments.{args.entry}')
  sys.argv = [args.entry] + [a for a in rest if a != '--']
  module.main()


if __name__ == '__main__':
  main()
