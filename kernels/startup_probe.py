"""Where a warm CIFAR-10 run's first seconds go, piece by piece, in one fresh process.

The experiment's summary reports start-up (process start -> run) and data load as two numbers;
this splits them: interpreter + imports, JAX backend start, reading the uint8 cache, the first and
a second host->device upload. Run from the repo root with the dataset cache already written:

  python3 kernels/startup_probe.py --data_dir=.data/cifar10-jpeg.tar.gz --cache_dir=/tmp/cache
  [--exe_cache_dir=JAXCACHE/dawnjax_executables]   # + executable-cache loads, 1 thread vs 4
Environment variables that change the backend's start (e.g. XLA_PYTHON_CLIENT_PREALLOCATE=false,
which stops JAX reserving 75% of GPU memory up front) apply as usual.
"""
import argparse
import time

WALL0 = time.time()
from dawnjax.experiments import common  # noqa: E402  (timed on purpose)

PROCESS_START = common.process_start_time()


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--data_dir', required=True)
  p.add_argument('--cache_dir', default=None)
  p.add_argument('--tiny_first', action='store_true',
                 help='upload 4 bytes before the dataset: is the first upload\'s cost fixed or per byte?')
  p.add_argument('--exe_cache_dir', default=None,
                 help='a dawnjax_executables directory: time loading each entry with 1 and 4 threads, '
                      'alternately (twice each)')
  args = p.parse_args()
  rows = [('process start -> first line of this script', WALL0 - PROCESS_START)]
  mark = time.perf_counter()

  def step(name):
    nonlocal mark
    now = time.perf_counter()
    rows.append((name, now - mark))
    mark = now

  import jax
  step('import jax')
  import flax.linen  # noqa: F401
  import optax  # noqa: F401
  step('import flax.linen + optax')
  import dawnjax.experiments.cifar10  # noqa: F401  (the rest of the entry point's imports)
  step('import the rest of dawnjax.experiments.cifar10')
  import numpy as np
  from dawnjax import parallel
  mesh = parallel.make_mesh(None)
  step(f'JAX backend start ({jax.devices()[0].device_kind})')
  from dawnjax.data.cifar10 import load_cifar10
  data = load_cifar10(args.data_dir, cache_dir=args.cache_dir)
  step('open the uint8 cache (memory map)')
  host = (np.asarray(data.train_images, np.uint8), np.asarray(data.train_labels, np.int32),
          np.asarray(data.test_images, np.uint8))
  step('read the cache into host memory')
  if args.tiny_first:
    jax.block_until_ready(parallel.put_replicated(np.zeros(4, np.uint8), mesh))
    step('tiny upload (4 bytes)')
  jax.block_until_ready(parallel.put_replicated(host, mesh))
  step(f'first upload ({sum(a.nbytes for a in host) / 1e6:.0f} MB)')
  jax.block_until_ready(parallel.put_replicated(host, mesh))
  step('second upload (same arrays)')
  if args.exe_cache_dir:
    import pathlib
    from dawnjax.train.executable_cache import ExecutableCache
    for path in sorted(pathlib.Path(args.exe_cache_dir).glob('*.pkl')):
      for threads in (1, 4, 1, 4):
        entry = ExecutableCache(args.exe_cache_dir, load_threads=threads).load(path.stem)
        step(f'load {path.stem[:8]} ({len(entry.programs) if entry else 0} programs, {threads} thread(s))')
        del entry
  for name, seconds in rows:
    print(f'{name:45s} {seconds:7.3f} s')
  print(f'{"total since process start":45s} {time.time() - PROCESS_START:7.3f} s')


if __name__ == '__main__':
  main()
