"""The on-disk cache of compiled programs: a hit trains exactly as compiling would, and anything
that changes the programs (recipe, data shapes, code, XLA flags) misses instead of reusing them."""
import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from dawnjax import parallel
from dawnjax.train import executable_cache, loop
from dawnjax.workloads.cifar10 import Cifar10Workload, CifarRecipe

from test_cifar10_workload import REPO, TINY, learnable_data

DATA = learnable_data(n_train=256, n_test=128)


def workload(**overrides):
  recipe = CifarRecipe(batch_size=64, epochs=2, **{**TINY, **overrides})
  return Cifar10Workload(recipe, parallel.make_mesh(1), data_loader=lambda: DATA, warm_up=True)


HIT_SCRIPT = textwrap.dedent('''
    import dataclasses, json, sys
    from dawnjax.train import executable_cache, loop
    import test_executable_cache as t
    wl = t.workload()
    wl.compile = lambda **_: sys.exit('a hit must not compile')
    prep = loop.prepare(wl, epoch_evals=False, executable_cache=executable_cache.ExecutableCache(sys.argv[1]))
    losses, metrics = t.trained(wl)
    print('HIT' + json.dumps({'state': prep.executable_cache, 'flops': dataclasses.asdict(prep.flops),
                              'losses': losses, 'metrics': metrics}))
''')


def trained(wl):
  result = loop.train_seed(wl, 0, loop.LoopConfig(eval_every_epoch=False))
  return [float(r.train_loss) for r in result.epochs], result.final_metrics


def test_a_hit_in_a_new_process_skips_compiling_and_trains_exactly_like_the_compiled_programs(tmp_path):
  cache = executable_cache.ExecutableCache(tmp_path / 'cache')
  first = workload()
  prep = loop.prepare(first, epoch_evals=False, executable_cache=cache)
  assert prep.executable_cache == 'miss, stored' and len(list((tmp_path / 'cache').glob('*.pkl'))) == 1
  assert set(first.compiled_programs()) >= {'init', 'epoch/whiten_trainable=True', 'eval/tta_level=2'}

  # A new process, as a warm start is: it must not compile, and it trains exactly as the first.
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             PYTHONPATH=os.pathsep.join([REPO, os.path.join(REPO, 'tests'), os.environ.get('PYTHONPATH', '')]))
  proc = subprocess.run([sys.executable, '-c', HIT_SCRIPT, str(tmp_path / 'cache')], env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  hit = json.loads(proc.stdout.split('HIT', 1)[1])
  assert hit['state'] == 'hit' and hit['flops'] == dataclasses.asdict(prep.flops) and prep.flops.train_per_example > 0
  losses, metrics = trained(first)
  assert hit['losses'] == losses and hit['metrics'] == metrics


def test_whatever_changes_the_programs_changes_the_key(monkeypatch):
  base = workload()
  base.load_data()
  key = executable_cache.cache_key(base.program_fingerprint(epoch_evals=False))
  assert executable_cache.cache_key(base.program_fingerprint(epoch_evals=False)) == key  # deterministic
  assert executable_cache.cache_key(base.program_fingerprint(epoch_evals=True)) != key
  other = workload(label_smoothing=0.1)
  other.load_data()
  assert executable_cache.cache_key(other.program_fingerprint(epoch_evals=False)) != key
  fewer = Cifar10Workload(base.recipe, base.mesh, data_loader=lambda: DATA, train_subset=192)
  fewer.load_data()
  assert executable_cache.cache_key(fewer.program_fingerprint(epoch_evals=False)) != key
  monkeypatch.setenv('XLA_FLAGS', '--xla_gpu_enable_triton_gemm=false')
  assert executable_cache.cache_key(base.program_fingerprint(epoch_evals=False)) != key
  monkeypatch.delenv('XLA_FLAGS')
  monkeypatch.setattr(executable_cache, 'source_digest', lambda: 'edited source')
  assert executable_cache.cache_key(base.program_fingerprint(epoch_evals=False)) != key


def test_an_upload_left_running_while_the_programs_compile_keys_compiles_and_trains_the_same():
  plain = workload()
  plain.load_data()
  over = Cifar10Workload(plain.recipe, plain.mesh, data_loader=lambda: DATA, warm_up=True, overlap_upload=True)
  over.load_data()
  assert not hasattr(over, 'train_images')  # the arrays arrive only with wait_for_data
  key = executable_cache.cache_key(plain.program_fingerprint(epoch_evals=False))
  assert executable_cache.cache_key(over.program_fingerprint(epoch_evals=False)) == key  # same cached programs
  prep = loop.prepare(over, epoch_evals=False)  # compiles from the arrays' shapes, then waits for them
  assert over.train_images.shape == (len(DATA.train_images), 32, 32, 3) and prep.data_load_seconds > 0
  loop.prepare(plain, epoch_evals=False)
  assert trained(over) == trained(plain)


def test_an_unreadable_entry_is_a_miss_and_old_entries_are_pruned(tmp_path):
  import jax
  import numpy as np
  from dawnjax.workloads.base import FlopCounts
  cache = executable_cache.ExecutableCache(tmp_path, keep=2)
  assert cache.load('absent') is None
  cache.path('broken').write_bytes(b'not a pickle')
  assert cache.load('broken') is None
  os.utime(cache.path('broken'), (1e9, 1e9))  # the oldest entry
  program = jax.jit(lambda x: x * 2).lower(np.ones(3, np.float32)).compile()
  for i, key in enumerate(('a', 'b', 'c')):
    time.sleep(0.02)  # distinct modification times
    assert cache.store(key, executable_cache.Entry({'double': program}, FlopCounts(float(i))))
  assert sorted(p.stem for p in tmp_path.glob('*.pkl')) == ['b', 'c']  # 'broken' and 'a' went
  entry = cache.load('c')
  assert entry.flops == FlopCounts(2.0) and list(np.asarray(entry.programs['double'](np.ones(3, np.float32)))) == [2, 2, 2]
  assert not list(tmp_path.glob('.*.tmp'))  # nothing half-written left behind


def test_programs_that_came_from_jax_cache_are_counted(tmp_path):
  # prepare() stores only programs this process compiled: XLA:CPU executables that JAX's cache
  # deserialised failed after a second round trip ("Function ... not found").
  import jax
  import numpy as np
  from jax._src import compilation_cache  # pylint: disable=import-outside-toplevel
  cache = executable_cache.ExecutableCache(tmp_path / 'exe')
  names = ('jax_compilation_cache_dir', 'jax_persistent_cache_min_compile_time_secs',
           'jax_persistent_cache_min_entry_size_bytes')
  saved = [getattr(jax.config, n) for n in names]
  for name, value in zip(names, (str(tmp_path / 'jax'), 0.0, -1)):
    jax.config.update(name, value)
  compilation_cache.reset_cache()
  try:
    f = jax.jit(lambda x: jnp_sin(x) * 3)
    with cache.watch_jax_cache() as first:
      f.lower(np.ones(5, np.float32)).compile()
    jax.clear_caches()  # as a new process: only the persistent cache has it
    with cache.watch_jax_cache() as second:
      f.lower(np.ones(5, np.float32)).compile()
  finally:
    for name, value in zip(names, saved):
      jax.config.update(name, value)
    compilation_cache.reset_cache()
  assert (first.hits, second.hits) == (0, 1)


def jnp_sin(x):
  import jax.numpy as jnp
  return jnp.sin(x)
