"""Data parallelism over every device of every host: one `Mesh` with a 'data' axis.

The same code runs on 1 CPU, 8 fake CPU devices and N GPUs/TPU chips: arrays are either
replicated (`P()`) or split along their leading (batch) axis (`P('data')`), and XLA's SPMD
partitioner inserts the collectives, so BatchNorm statistics are over the global batch.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from dawnjax.errors import ConfigError

DATA_AXIS = 'data'


def maybe_initialize_distributed() -> None:
  """Joins a multi-host job when the launcher says there is one; must run before anything starts
  JAX's backends (jax.distributed refuses to initialise after that).

  `JAX_COORDINATOR_ADDRESS=host:port` with `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID` (dawnjax reads
  these two; a cluster JAX detects itself, e.g. SLURM or Open MPI, may supply them instead), or
  `DAWNJAX_MULTIHOST=1` where JAX detects everything (Cloud TPU pods).
  """
  if jax.distributed.is_initialized():
    return  # the launcher did it
  address = os.environ.get('JAX_COORDINATOR_ADDRESS')
  if not (address or os.environ.get('DAWNJAX_MULTIHOST') == '1'):
    return
  kwargs = {}
  for key, env in (('num_processes', 'JAX_NUM_PROCESSES'), ('process_id', 'JAX_PROCESS_ID')):
    if (value := os.environ.get(env)) is not None:
      try:
        kwargs[key] = int(value)
      except ValueError:
        raise ConfigError(f'{env}={value!r}: expected an integer') from None
  try:
    jax.distributed.initialize(address, **kwargs)
  except (ValueError, RuntimeError) as e:
    raise ConfigError(f'multi-host start-up (JAX_COORDINATOR_ADDRESS={address!r}, {kwargs or "nothing else set"}) '
                      f'failed: {str(e).splitlines()[0]}') from None


def make_mesh(num_devices: int | None = None) -> Mesh:
  """A 1-D mesh over the first `num_devices` devices (all when None)."""
  devices = jax.devices()
  if num_devices is not None:
    if num_devices < 1 or num_devices > len(devices):
      raise ConfigError(f'--num_devices={num_devices} but {len(devices)} devices are visible')
    devices = devices[:num_devices]
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def put_replicated(tree: Any, mesh: Mesh) -> Any:
  """Host arrays -> global arrays replicated on every device of every host."""
  sharding = replicated(mesh)

  def put(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

  return jax.tree_util.tree_map(put, tree)


def check_divisible(batch_size: int, mesh: Mesh, flag: str = '--batch_size') -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise ConfigError(f'{flag}={batch_size} is not divisible by the {n} devices of the mesh')


def device_description(mesh: Mesh) -> dict[str, Any]:
  d = mesh.devices.flat[0]
  return {
      'platform': d.platform,
      'device_kind': d.device_kind,
      'num_devices': int(mesh.devices.size),
      'num_hosts': jax.process_count(),
  }
