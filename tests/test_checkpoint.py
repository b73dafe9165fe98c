"""Checkpointing and resume: SIGKILL at several points, corrupt checkpoints, refused mismatches."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from dawnjax import parallel
from dawnjax.errors import ConfigError
from dawnjax.report import dawnbench
from dawnjax.train import checkpoint, loop
from dawnjax.workloads.cifar10 import Cifar10Workload, CifarRecipe

from test_cifar10_workload import TINY, learnable_data

REPO = pathlib.Path(__file__).resolve().parents[1]
RECIPE = dict(batch_size=64, epochs=4, **TINY)
DATA = dict(n_train=128, n_test=64)  # 2 steps an epoch: XLA's CPU convolutions are slow


class Crash(Exception):
  pass


class CrashAfter:
  """A listener that kills the seed (in-process) once `epoch` is reported, before it is saved."""

  def __init__(self, epoch):
    self.epoch = epoch

  def on_epoch(self, record):
    if record.epoch == self.epoch:
      raise Crash

  def on_seed_end(self, result):
    pass


def same_tree(a, b) -> bool:
  return all(jax.tree_util.tree_leaves(jax.tree_util.tree_map(
      lambda x, y: bool(np.array_equal(np.asarray(x), np.asarray(y))), a, b)))


@pytest.fixture(scope='module')
def jax_cache(tmp_path_factory):
  return tmp_path_factory.mktemp('jax_cache')


@pytest.fixture(scope='module')
def workload(jax_cache):
  data = learnable_data(**DATA)
  wl = Cifar10Workload(CifarRecipe(**RECIPE), parallel.make_mesh(), data_loader=lambda: data)
  # Compiled into a persistent cache that the subprocesses below load instead of compiling again.
  from jax._src import compilation_cache  # pylint: disable=import-outside-toplevel
  names = ('jax_compilation_cache_dir', 'jax_persistent_cache_min_compile_time_secs',
           'jax_persistent_cache_min_entry_size_bytes')
  saved = [getattr(jax.config, n) for n in names]
  for name, value in zip(names, (str(jax_cache), 0.0, -1)):
    jax.config.update(name, value)
  compilation_cache.reset_cache()
  try:
    loop.prepare(wl)
  finally:
    for name, value in zip(names, saved):
      jax.config.update(name, value)
    compilation_cache.reset_cache()
  return wl


@pytest.fixture(scope='module')
def references(workload):
  """Uninterrupted runs of seeds 0 and 1."""
  return [loop.train_seed(workload, seed, loop.LoopConfig()) for seed in (0, 1)]


def test_resume_after_crash_is_exact_and_skips_a_corrupt_newest_checkpoint(workload, references, tmp_path):
  reference = references[0]
  config = checkpoint.CheckpointConfig(str(tmp_path / 'ckpt'), every_epochs=1, keep=3)
  ckpt = checkpoint.Checkpointer(config, workload, log=lambda s: None)
  with pytest.raises(Crash):
    loop.train_seed(workload, 0, loop.LoopConfig(), (CrashAfter(3),), checkpointer=ckpt)
  ckpt.close()
  assert ckpt.steps(0) == [1, 2]
  # Truncate every file of the newest checkpoint's arrays: it must be skipped for epoch 1's.
  for path in (tmp_path / 'ckpt' / 'seed_0' / '2' / 'state').rglob('*'):
    if path.is_file() and path.stat().st_size > 0:
      path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
  ckpt = checkpoint.Checkpointer(config, workload, log=lambda s: None)
  with pytest.warns(UserWarning, match='seed_0/2: corrupt or truncated checkpoint'):
    result = loop.train_seed(workload, 0, loop.LoopConfig(), checkpointer=ckpt)
  assert result.resumed_from_epochs == [1]
  assert [e.epoch for e in result.epochs] == [1, 2, 3, 4]
  assert [e.metrics for e in result.epochs] == [e.metrics for e in reference.epochs]
  assert [e.train_loss for e in result.epochs] == [e.train_loss for e in reference.epochs]
  assert same_tree(result.final_state, reference.final_state)
  assert result.checkpoint_saves == 3 and result.checkpoint_blocked_seconds > 0
  assert result.timed_seconds >= result.epochs[-1].timed_seconds > result.epochs[0].timed_seconds
  # The finished seed is stored; its step checkpoints are gone; a second run does not retrain it.
  assert (tmp_path / 'ckpt' / 'seed_0.done.json').is_file() and ckpt.steps(0) == []
  again = loop.train_seed(workload, 0, loop.LoopConfig(), checkpointer=ckpt)
  assert again.final_state is None and [e.metrics for e in again.epochs] == [e.metrics for e in result.epochs]
  ckpt.close()


def test_checkpoint_of_another_recipe_is_refused(workload, tmp_path):
  config = checkpoint.CheckpointConfig(str(tmp_path / 'ckpt'), every_epochs=1)
  ckpt = checkpoint.Checkpointer(config, workload)
  state = workload.init(0)
  ckpt.save(0, 1, state, {'records': []})
  ckpt.close()
  other = Cifar10Workload(CifarRecipe(**dict(RECIPE, lr=1.0)), parallel.make_mesh(),
                          data_loader=workload._data_loader)  # pylint: disable=protected-access
  other.load_data()
  with pytest.raises(ConfigError, match=r'seed_0/1 belongs to a different run .*differing in lr'):
    checkpoint.Checkpointer(config, other).restore(0, state)


def test_full_disk_or_unwritable_dir_fails_before_training(workload, tmp_path, monkeypatch):
  blocker = tmp_path / 'a_file'
  blocker.write_text('x')
  with pytest.raises(ConfigError, match='is not writable'):
    checkpoint.Checkpointer(checkpoint.CheckpointConfig(str(blocker / 'ckpt'), every_epochs=1), workload)
  monkeypatch.setattr(checkpoint.shutil, 'disk_usage', lambda _: shutil._ntuple_diskusage(10**9, 10**9, 1000))
  ckpt = checkpoint.Checkpointer(checkpoint.CheckpointConfig(str(tmp_path / 'ckpt'), every_epochs=1), workload)
  trained = []
  monkeypatch.setattr(workload, 'train_epoch', lambda *a: trained.append(a))
  with pytest.raises(ConfigError, match=r'MiB free, checkpoints need about'):
    loop.train_seed(workload, 0, loop.LoopConfig(), checkpointer=ckpt)
  assert not trained


class StubWorkload:
  task, model_name, dataset_name, num_epochs = 'squad', 'stub', 'stub', 3
  recipe = None

  def train_examples(self, epoch):
    return 10

  def describe(self):
    return {'width': 4}


def test_typed_keys_low_precision_and_empty_subtrees_round_trip(tmp_path):
  import flax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  @flax.struct.dataclass
  class State:
    params: dict
    ema: object
    rng: jax.Array
    other_rng: jax.Array

  state = State({'w': jnp.arange(6, dtype=jnp.bfloat16).reshape(2, 3), 'step': jnp.int32(7)}, None,
                jax.random.key(3), jax.random.key(4, impl='rbg'))
  ckpt = checkpoint.Checkpointer(checkpoint.CheckpointConfig(str(tmp_path), every_epochs=1),
                                 StubWorkload(), log=lambda s: None)
  ckpt.save(0, 2, state, {'records': [], 'timed_seconds': 1.5})
  ckpt.wait()
  template = State({'w': jnp.zeros((2, 3), jnp.bfloat16), 'step': jnp.int32(0)}, None,
                   jax.random.key(0), jax.random.key(0, impl='rbg'))
  restored, meta = ckpt.restore(0, template)
  ckpt.close()
  assert meta['epoch'] == 2 and meta['timed_seconds'] == 1.5
  assert restored.params['w'].dtype == jnp.bfloat16 and int(restored.params['step']) == 7
  assert restored.ema is None
  assert jax.random.key_impl(restored.other_rng) == jax.random.key_impl(state.other_rng)
  assert np.array_equal(jax.random.key_data(restored.rng), jax.random.key_data(state.rng))
  assert np.array_equal(jax.random.key_data(restored.other_rng), jax.random.key_data(state.other_rng))


# ------------------------------------------------------------------ SIGKILL, end to end
DRIVER = textwrap.dedent('''
    """python -m dawnjax.experiments.cifar10 on generated data, SIGKILLing itself where told."""
    import os, signal, sys
    sys.path[:0] = [{repo!r}, {tests!r}]
    import numpy as np
    from test_cifar10_workload import learnable_data
    from dawnjax.data import cifar10 as data_lib
    from dawnjax.train import checkpoint, loop
    from dawnjax.workloads.cifar10 import Cifar10Workload

    data_lib.load_cifar10 = lambda *a, **k: learnable_data(**{data!r})
    kind, seed, epoch = (os.environ.get('KILL_AT') or 'none:-1:-1').split(':')
    seed, epoch = int(seed), int(epoch)
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)
    current = {{}}

    init, train_epoch, save = Cifar10Workload.init, Cifar10Workload.train_epoch, checkpoint.Checkpointer.save
    def init_(self, s):
      current['seed'] = s
      return init(self, s)
    def train_epoch_(self, state, e):
      out = train_epoch(self, state, e)  # dispatched, not finished: killed mid-epoch
      if kind == 'epoch' and (current['seed'], e + 1) == (seed, epoch):
        die()
      return out
    def save_(self, s, done, state, meta):
      save(self, s, done, state, meta)  # the arrays are copied; the files are being written
      if kind == 'save' and (s, done) == (seed, epoch):
        die()
    Cifar10Workload.init, Cifar10Workload.train_epoch, checkpoint.Checkpointer.save = init_, train_epoch_, save_

    train_seed = loop.train_seed
    def train_seed_(workload, s, *args, **kwargs):
      result = train_seed(workload, s, *args, **kwargs)
      if result.final_state is not None:
        leaves = jax.tree_util.tree_leaves(result.final_state.params)
        name = ('' if 'checkpointer' in kwargs else 'baseline_') + f'params_seed{{s}}.npz'
        np.savez(os.path.join(os.environ['PARAMS_DIR'], name), *map(np.asarray, leaves))
      return result
    loop.train_seed = train_seed_
    import jax
    from dawnjax.experiments import cifar10
    cifar10.main()
''')

FLAGS = ['--data_dir=generated', '--seeds=2', '--batch_size=64', '--epochs=4', '--widths=8,8,8',
         '--dtype=float32', '--eval_batch_size=64', '--whiten_images=64', '--target=0',
         '--noexport_model', '--notensorboard']


def launch(tmp_path, jax_cache, out, kill_at='', extra=()):
  driver = tmp_path / 'driver.py'
  if not driver.exists():
    driver.write_text(DRIVER.format(repo=str(REPO), tests=str(REPO / 'tests'), data=DATA))
  (tmp_path / out).mkdir(exist_ok=True)
  env = dict(os.environ, KILL_AT=kill_at, PARAMS_DIR=str(tmp_path / out), JAX_PLATFORMS='cpu')
  cmd = [sys.executable, str(driver), f'--output_dir={tmp_path / out}',
         f'--compilation_cache_dir={jax_cache}', *FLAGS, *extra]
  return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc, want_rc):
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == want_rc, out[-3000:]
  return out


def check_results_readable(out: pathlib.Path):
  """Whatever results a killed run left are whole files."""
  if (out / 'summary.json').exists():
    json.loads((out / 'summary.json').read_text())
  for tsv in out.rglob('*.tsv'):
    dawnbench.parse_tsv(tsv, 'cifar10')


def test_sigkill_mid_epoch_and_mid_save_then_resume_equals_uninterrupted(references, jax_cache, tmp_path):
  ckpt = ['--checkpoint_every_epochs=1', '--keep=2']
  finish(launch(tmp_path, jax_cache, 'run', 'epoch:0:3', ckpt), -signal.SIGKILL)  # seed 0, mid-epoch 3
  check_results_readable(tmp_path / 'run')
  steps = sorted(p.name for p in (tmp_path / 'run' / 'checkpoints' / 'seed_0').iterdir() if p.name.isdigit())
  assert steps in (['1'], ['1', '2'])  # save 2 may still have been in flight: then it never happened
  finish(launch(tmp_path, jax_cache, 'run', 'save:1:2', ckpt), -signal.SIGKILL)  # seed 1, save 2 in flight
  check_results_readable(tmp_path / 'run')
  assert (tmp_path / 'run' / 'checkpoints' / 'seed_0.done.json').is_file()
  partial = json.loads((tmp_path / 'run' / 'summary.json').read_text())
  assert partial['partial'] and partial['seeds'] == 1 and partial['resumed']
  log = finish(launch(tmp_path, jax_cache, 'run', '', ckpt + ['--checkpoint_baseline']), 0)
  assert 'seed 0: finished by an earlier run' in log and 'seed 1: resuming after epoch' in log
  for seed, ref in enumerate(references):
    got = dawnbench.parse_tsv(tmp_path / 'run' / 'seeds' / f'seed_{seed}.tsv', 'cifar10')
    assert [r.epoch for r in got] == [1, 2, 3, 4]  # every completed epoch exactly once
    assert [r.metrics for r in got] == [e.metrics for e in ref.epochs]  # exact: the TSV keeps repr()
    assert all(b.hours > a.hours for a, b in zip(got, got[1:]))
    want = jax.tree_util.tree_leaves(ref.final_state.params)
    for prefix in ('', 'baseline_'):  # resumed; trained again with checkpointing off
      params = np.load(tmp_path / 'run' / f'{prefix}params_seed{seed}.npz')
      assert len(params.files) == len(want)
      assert all(np.array_equal(params[f'arr_{i}'], np.asarray(w)) for i, w in enumerate(want))
  summary = json.loads((tmp_path / 'run' / 'summary.json').read_text())
  block = summary['checkpointing']
  assert summary['resumed'] and not summary['partial'] and block['enabled']
  assert [s['seed'] for s in block['resumed_seeds']] == [0, 1]
  assert block['resumed_seeds'][0]['from_epochs'] == [int(steps[-1])]
  assert block['saves_per_seed'] == 3  # epochs 1-3; the last epoch's state is the result
  assert block['timed_seconds_minus_blocked']['mean'] < block['timed_seconds_with_checkpointing']['mean']
  assert block['without_checkpointing']['timed_seconds']['n'] == 2
  # A finished run's checkpoints are not silently trained over.
  log = finish(launch(tmp_path, jax_cache, 'run', '', ckpt + ['--noresume']), 2)
  assert 'holds checkpoints of an earlier run and --noresume was given' in log
