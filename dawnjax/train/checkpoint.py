"""Orbax checkpoints of the full train state, so a killed run resumes exactly where it was.

A checkpoint of seed k after epoch e (output_dir/checkpoints/seed_<k>/<e>/) holds two items:
`state`, every leaf of the workload's train state (params, optimizer state, BatchNorm statistics,
step, RNG keys), and `meta`, JSON with the loop's bookkeeping: epochs done, timed seconds so far,
the EpochRecords so far, checkpoint tallies and a fingerprint of the workload. Data order and
augmentation are pure functions of (seed, epoch, step) in every workload, so the epoch index is
the whole data-order state. When a seed finishes, its result goes to seed_<k>.done.json and its
step checkpoints are deleted: a resumed multi-seed run skips finished seeds.

Saves are asynchronous (orbax copies the arrays to host memory, then writes in a thread); the
loop times how long it is blocked. Orbax writes into a temporary directory and renames it when
complete, on every host, so only complete checkpoints are listed; a listed one that still fails
to read (truncated or corrupted files) is skipped with a warning for the one before it.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from dawnjax.errors import ConfigError
from dawnjax.report.atomic import atomic_write_text
from dawnjax.train.loop import EpochRecord, SeedResult
from dawnjax.workloads.base import Workload

FORMAT_VERSION = 1
SUBDIR = 'checkpoints'


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
  """When to save and where; `resume` continues from checkpoints found in `directory`."""
  directory: str
  every_epochs: int = 0  # 0 = not by epochs
  every_seconds: float = 0.0  # 0 = not by time; timed seconds since the last save
  keep: int = 2
  resume: bool = True

  @property
  def saving(self) -> bool:
    return self.every_epochs > 0 or self.every_seconds > 0

  def validate(self) -> None:
    if self.every_epochs < 0 or self.every_seconds < 0:
      raise ConfigError('--checkpoint_every_epochs and --checkpoint_every_seconds must be >= 0')
    if self.keep < 1:
      raise ConfigError(f'--keep={self.keep}: keep at least 1 checkpoint')

  def as_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def workload_fingerprint(workload: Workload) -> dict[str, Any]:
  """What must match for a checkpoint to belong to this run: task, model, data size, recipe.

  The recipe (or config) dataclass rather than describe(), which also holds run statistics.
  """
  recipe = getattr(workload, 'recipe', None) or getattr(workload, 'config', None)
  if dataclasses.is_dataclass(recipe):
    recipe = dataclasses.asdict(recipe)
  elif recipe is None:
    recipe = workload.describe()
  return json.loads(json.dumps({
      'task': workload.task, 'model': workload.model_name, 'dataset': workload.dataset_name,
      'num_epochs': workload.num_epochs,
      'train_examples': [workload.train_examples(e) for e in range(workload.num_epochs)],
      'recipe': recipe}, sort_keys=True, default=str))


def _is_key(x: Any) -> bool:
  return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _flatten(state: Any) -> tuple[dict[str, Any], list[list[Any]]]:
  """Leaves keyed by index (names safe for any storage) and the tree's signature.

  Typed PRNG keys are stored as their raw key data; restore re-wraps them with the template's
  implementation.
  """
  leaves, signature = {}, []
  for i, (path, leaf) in enumerate(jax.tree_util.tree_flatten_with_path(state)[0]):
    if _is_key(leaf):
      leaf = jax.random.key_data(leaf)
    leaves[f'{i:05d}'] = leaf
    signature.append([jax.tree_util.keystr(path), list(np.shape(leaf)), str(leaf.dtype)])
  return leaves, signature


def state_bytes(state: Any) -> int:
  return sum(int(np.prod(np.shape(x))) * np.dtype(x.dtype).itemsize
             for x in _flatten(state)[0].values())


def record_to_json(record: EpochRecord) -> dict[str, Any]:
  return dataclasses.asdict(record)


def record_from_json(obj: dict[str, Any]) -> EpochRecord:
  return EpochRecord(**obj)


def result_to_json(result: SeedResult) -> dict[str, Any]:
  out = {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name != 'final_state'}
  out['epochs'] = [record_to_json(r) for r in result.epochs]
  return out


def result_from_json(obj: dict[str, Any]) -> SeedResult:
  values = dict(obj)
  values['epochs'] = [record_from_json(r) for r in obj['epochs']]
  return SeedResult(**values)


def has_checkpoints(directory: str | Path) -> bool:
  """Whether `directory` holds anything a run could resume from (finished seeds or steps)."""
  root = Path(directory)
  if not root.is_dir():
    return False
  return any(root.glob('seed_*.done.json')) or any(
      p.is_dir() and any(c.name.isdigit() for c in p.iterdir()) for p in root.glob('seed_*'))


class Checkpointer:
  """Saves and restores one run's per-seed checkpoints; every host must call every method."""

  def __init__(self, config: CheckpointConfig, workload: Workload, *,
               log: Callable[[str], None] = print):
    config.validate()
    self.config = config
    self.root = Path(config.directory).resolve()  # orbax wants absolute paths
    self.workload = workload
    self.log = log
    self._managers: dict[int, Any] = {}
    self._space_checked = False
    try:
      self.root.mkdir(parents=True, exist_ok=True)
      probe = self.root / '.write_probe'
      probe.write_bytes(b'x')
      probe.unlink()
    except OSError as err:
      raise ConfigError(f'checkpoint directory {self.root} is not writable: {err.strerror or err}') from err

  @functools.cached_property
  def fingerprint(self) -> dict[str, Any]:
    # On first use: the workload knows its data size only once its data is loaded.
    return workload_fingerprint(self.workload)

  # ---------------------------------------------------------------- orbax
  def _manager(self, seed: int):
    if seed not in self._managers:
      import orbax.checkpoint as ocp
      try:
        from orbax.checkpoint.checkpoint_managers import preservation_policy
        keep = {'preservation_policy': preservation_policy.LatestN(n=self.config.keep)}
      except ImportError:  # orbax < 0.11: max_to_keep (deprecated since)
        keep = {'max_to_keep': self.config.keep}
      options = ocp.CheckpointManagerOptions(
          enable_async_checkpointing=True,
          # Leftovers of a save that a kill interrupted; never listed as steps either way.
          cleanup_tmp_directories=True, **keep)
      self._managers[seed] = ocp.CheckpointManager(self.root / f'seed_{seed}', options=options)
    return self._managers[seed]

  def _done_path(self, seed: int) -> Path:
    return self.root / f'seed_{seed}.done.json'

  # ---------------------------------------------------------------- queries
  def completed(self, seed: int) -> SeedResult | None:
    """The stored result of `seed` when an earlier run finished it (and resuming is on)."""
    path = self._done_path(seed)
    if not self.config.resume or not path.is_file():
      return None
    try:
      obj = json.loads(path.read_text())
    except (OSError, ValueError) as err:
      warnings.warn(f'{path}: unreadable ({err}); seed {seed} is trained again')
      return None
    self._check_fingerprint(obj.get('fingerprint'), path)
    self.log(f'seed {seed}: finished by an earlier run; result restored from {path}')
    return result_from_json(obj['result'])

  def steps(self, seed: int) -> list[int]:
    if not (self.root / f'seed_{seed}').is_dir():
      return []
    return sorted(self._manager(seed).all_steps())

  def _check_fingerprint(self, stored: dict[str, Any] | None, where: Path) -> None:
    if stored == self.fingerprint:
      return
    stored = stored or {}
    diff = sorted(k for k in set(stored) | set(self.fingerprint) if stored.get(k) != self.fingerprint.get(k))
    detail = diff
    if diff == ['recipe']:
      a, b = stored.get('recipe') or {}, self.fingerprint['recipe']
      detail = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)) if isinstance(a, dict) else diff
    raise ConfigError(
        f'{where} belongs to a different run ({stored.get("model")!r}, differing in {", ".join(detail)}); '
        f'use another --output_dir, or delete {self.root} to start over')

  # ---------------------------------------------------------------- save
  def check_space(self, state: Any) -> None:
    """Fails before training when the disk cannot hold --keep checkpoints plus one being written."""
    if self._space_checked:
      return
    self._space_checked = True
    need = state_bytes(state) * (self.config.keep + 1)
    free = shutil.disk_usage(self.root).free
    if free < need:
      raise ConfigError(f'{self.root}: {free / 2**20:.0f} MiB free, checkpoints need about '
                        f'{need / 2**20:.0f} MiB (state x (--keep + 1)); free space or lower --keep')

  def should_save(self, epochs_done: int, seconds_since_save: float) -> bool:
    cfg = self.config
    due = bool((cfg.every_epochs and epochs_done % cfg.every_epochs == 0) or
               (cfg.every_seconds and seconds_since_save >= cfg.every_seconds))
    if cfg.every_seconds and jax.process_count() > 1:
      # Clocks differ between hosts, and every host must take part in a save: host 0 decides.
      from jax.experimental import multihost_utils
      due = bool(multihost_utils.broadcast_one_to_all(np.int32(due)))
    return due

  def save(self, seed: int, epochs_done: int, state: Any, meta: dict[str, Any]) -> None:
    """Starts an asynchronous save; returns once the arrays are copied off the device buffers."""
    import orbax.checkpoint as ocp
    leaves, signature = _flatten(state)
    meta = dict(meta, version=FORMAT_VERSION, seed=seed, epoch=epochs_done,
                fingerprint=self.fingerprint, tree=signature)
    self._manager(seed).save(epochs_done, args=ocp.args.Composite(
        state=ocp.args.StandardSave(leaves), meta=ocp.args.JsonSave(meta)))

  def wait(self) -> None:
    for manager in self._managers.values():
      manager.wait_until_finished()

  def finish_seed(self, result: SeedResult) -> None:
    """Records a finished seed and drops its step checkpoints (superseded by the result)."""
    self.wait()
    if jax.process_index() == 0:
      # Python's JSON (NaN allowed): an internal file whose floats must round-trip exactly,
      # a diverged run's NaN loss included.
      atomic_write_text(self._done_path(result.seed), json.dumps(
          {'version': FORMAT_VERSION, 'fingerprint': self.fingerprint, 'result': result_to_json(result)},
          indent=1) + '\n')
    manager = self._managers.pop(result.seed, None)
    if manager is not None:
      for step in manager.all_steps():
        manager.delete(step)
      manager.close()

  # ---------------------------------------------------------------- restore
  def restore(self, seed: int, template: Any) -> tuple[Any, dict[str, Any]] | None:
    """(state, meta) from the newest readable checkpoint of `seed`, or None when there is none.

    `template` is a freshly initialised state: it gives the restored arrays their shapes,
    dtypes, shardings and key implementations. Unreadable checkpoints are skipped with a
    warning and deleted, so that the steps are saved again.
    """
    import orbax.checkpoint as ocp
    manager = self._manager(seed)
    template_leaves, signature = _flatten(template)
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template_leaves)
    bad = []
    found = None
    for step in sorted(manager.all_steps(), reverse=True):
      where = self.root / f'seed_{seed}' / str(step)
      try:
        meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))['meta']
      except Exception as err:  # pylint: disable=broad-except
        warnings.warn(f'{where}: unreadable checkpoint metadata ({type(err).__name__}: {err}); '
                      'trying the previous one')
        bad.append(step)
        continue
      self._check_fingerprint(meta.get('fingerprint'), where)
      if meta.get('tree') != signature:
        raise ConfigError(f'{where}: the saved train state has a different structure than this '
                          f'{self.workload.model_name}; use another --output_dir')
      try:
        leaves = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract)))['state']
        leaves = jax.block_until_ready(leaves)
      except Exception as err:  # pylint: disable=broad-except
        warnings.warn(f'{where}: corrupt or truncated checkpoint ({type(err).__name__}: '
                      f'{str(err)[:200]}); trying the previous one')
        bad.append(step)
        continue
      found = (leaves, meta)
      break
    for step in bad:
      manager.delete(step)
    if found is None:
      if bad:
        warnings.warn(f'seed {seed}: no readable checkpoint in {self.root}; training from the start')
      return None
    leaves, meta = found
    self.log(f'seed {seed}: resuming after epoch {meta["epoch"]} from {self.root / f"seed_{seed}"} '
             f'({meta["timed_seconds"]:.3f} timed s so far)')
    treedef = jax.tree_util.tree_structure(template)
    flat_template = jax.tree_util.tree_leaves(template)
    restored = []
    for i, like in enumerate(flat_template):
      leaf = leaves[f'{i:05d}']
      if _is_key(like):
        leaf = jax.random.wrap_key_data(leaf, impl=jax.random.key_impl(like))
      restored.append(leaf)
    return jax.tree_util.tree_unflatten(treedef, restored), meta

  def close(self) -> None:
    for manager in self._managers.values():
      manager.wait_until_finished()
      manager.close()
    self._managers.clear()

