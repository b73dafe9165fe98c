"""Compiled programs kept on disk, so that a warm start skips tracing and lowering too.

JAX's persistent compilation cache (--compilation_cache_dir) skips XLA's compilation, but every
process still traces and lowers each program to compute that cache's key: ~2.5 s of a 10.4 s warm
CIFAR-10 start on an H100 (experiments/results/cifar10_jpeg/h100_2026-11-23_next). This cache
stores the compiled executables themselves (`jax.experimental.serialize_executable`) with the
workload's FLOP counts, under a key made of everything that determines them: dawnjax's source
files, the workload's program fingerprint (recipe, data shapes, mesh), the Python/JAX/jaxlib/
flax/optax/numpy versions, $XLA_FLAGS, the cuDNN errata file (dawnjax/cudnn_errata.py) and JAX's
configuration. Anything changed is a miss, never a stale program; an unreadable entry is a miss that
gets rewritten.

Entries are pickles: load only a cache directory you wrote yourself.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

from absl import logging

from dawnjax import cudnn_errata
from dawnjax.workloads.base import FlopCounts

FORMAT_VERSION = 1
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # dawnjax/
# JAX options that name caches, logs or profilers, and the platform list (the devices are in the
# key): they do not change a compiled program.
_CONFIG_IGNORED = ('cache', 'log', 'profil', 'pgle', 'explain', 'jax_platforms')


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
  """sha256 of every .py file of the dawnjax package (path and contents)."""
  h = hashlib.sha256()
  for path in sorted(_PACKAGE_ROOT.rglob('*.py')):
    h.update(str(path.relative_to(_PACKAGE_ROOT)).encode() + b'\0' + path.read_bytes() + b'\0')
  return h.hexdigest()


def environment() -> dict[str, Any]:
  """What besides dawnjax's code and the workload decides what XLA compiles."""
  import flax
  import jax
  import jaxlib
  import numpy
  import optax
  config = {k: v for k, v in jax.config.values.items()
            if not any(word in k for word in _CONFIG_IGNORED) and isinstance(v, (bool, int, float, str, type(None)))}
  return {
      'format': FORMAT_VERSION,
      'python': sys.version,
      'versions': {m.__name__: getattr(m, '__version__', '?') for m in (jax, jaxlib, flax, optax, numpy)},
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'cudnn_errata': cudnn_errata.installed_rules(),
      'jax_config': config,
      'devices': [(d.id, d.platform, d.device_kind, d.process_index) for d in jax.devices()],
  }


def cache_key(fingerprint: Mapping[str, Any]) -> str:
  blob = json.dumps({'workload': fingerprint, 'source': source_digest(), 'environment': environment()},
                    sort_keys=True, default=str)
  return hashlib.sha256(blob.encode()).hexdigest()[:40]


@dataclasses.dataclass
class _JaxCacheHits:
  hits: int = 0


@dataclasses.dataclass(frozen=True)
class Entry:
  programs: dict[str, Any]  # name -> jax.stages.Compiled
  flops: FlopCounts


@functools.lru_cache(maxsize=1)
def _bind_lazy_kernels() -> None:
  """XLA:CPU's LAPACK kernels (the eigh of CIFAR-10's whitening init) get their function pointers
  when a decomposition is first lowered in a process; an executable deserialised before that calls
  a null pointer (a segfault on jaxlib 0.10). Lowering a 2x2 eigh binds them, on any backend."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  jax.jit(jnp.linalg.eigh).lower(np.eye(2, dtype=np.float32))


class ExecutableCache:
  """A directory of serialised compiled programs, one file per key."""

  def __init__(self, directory: str | os.PathLike, keep: int = 16, load_threads: int = 4):
    """`keep`: entries kept (newest first); every edit of dawnjax's source makes a new one.
    `load_threads`: programs deserialised at once (jaxlib releases the GIL while it loads one)."""
    self.directory = Path(directory)
    self.keep = keep
    self.load_threads = max(1, load_threads)

  def load_for(self, fingerprint: Mapping[str, Any]) -> Entry | None:
    return self.load(cache_key(fingerprint))

  def store_for(self, fingerprint: Mapping[str, Any], programs: dict[str, Any], flops: FlopCounts) -> bool:
    return self.store(cache_key(fingerprint), Entry(programs, flops))

  def discard(self, fingerprint: Mapping[str, Any], reason: str) -> None:
    path = self.path(cache_key(fingerprint))
    logging.warning('Executable cache entry %s did not run (%s); removed, compiling instead', path, reason)
    path.unlink(missing_ok=True)

  @contextlib.contextmanager
  def watch_jax_cache(self) -> Iterator[_JaxCacheHits]:
    """Counts JAX persistent-cache hits inside the block (jax.monitoring events)."""
    import jax
    hits = _JaxCacheHits()

    def listener(event: str, **_) -> None:
      if event == '/jax/compilation_cache/cache_hits':
        hits.hits += 1

    jax.monitoring.register_event_listener(listener)
    try:
      yield hits
    finally:
      jax.monitoring.unregister_event_listener(listener)

  def path(self, key: str) -> Path:
    return self.directory / f'{key}.pkl'

  def load(self, key: str) -> Entry | None:
    """The entry for `key`, or None (absent, or unreadable: logged, and the next store replaces it)."""
    path = self.path(key)
    if not path.is_file():
      return None
    from jax.experimental import serialize_executable
    _bind_lazy_kernels()
    try:
      with open(path, 'rb') as f:
        stored = pickle.load(f)
      names, blobs = zip(*stored['programs'].items()) if stored['programs'] else ((), ())
      with concurrent.futures.ThreadPoolExecutor(min(self.load_threads, max(len(blobs), 1))) as pool:
        loaded = list(pool.map(lambda blob: serialize_executable.deserialize_and_load(*blob), blobs))
      return Entry(dict(zip(names, loaded)), FlopCounts(**stored['flops']))
    except Exception as e:  # truncated file, another jaxlib's format, a device that no longer exists
      logging.warning('Executable cache entry %s unreadable (%s: %s); compiling instead', path,
                      type(e).__name__, str(e)[:200])
      return None

  def store(self, key: str, entry: Entry) -> bool:
    """Writes `entry` atomically; False (logged) where a program cannot be serialised."""
    from jax.experimental import serialize_executable
    try:
      blobs = {name: serialize_executable.serialize(c) for name, c in entry.programs.items()}
      payload = pickle.dumps({'programs': blobs, 'flops': dataclasses.asdict(entry.flops)})
    except Exception as e:  # e.g. a program with closed-over constants (not serialisable in JAX)
      logging.warning('Executable cache: not stored (%s: %s)', type(e).__name__, str(e)[:200])
      return False
    self.directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{key}.', suffix='.tmp', dir=self.directory)
    try:
      with os.fdopen(fd, 'wb') as f:
        f.write(payload)
      os.replace(tmp, self.path(key))
    finally:
      if os.path.exists(tmp):
        os.remove(tmp)
    self._prune()
    return True

  def _prune(self) -> None:
    entries = sorted(self.directory.glob('*.pkl'), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[self.keep:]:
      old.unlink(missing_ok=True)
