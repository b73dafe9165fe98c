"""Where dawnjax's Pallas (Triton) kernels run, and how they run on a data-parallel mesh.

The kernels are Triton kernels on GPUs and run in Pallas's interpreter on CPU (the tests: same
results, slowly). TPUs have no Triton backend; there every caller computes the same values with XLA.
"""
from __future__ import annotations

import jax
from jax.sharding import PartitionSpec as P

from dawnjax.parallel import DATA_AXIS


def pow2(n: int) -> int:
  """The smallest power of two >= n (1 for n <= 1): Triton's block shapes must be powers of two."""
  return 1 << max(0, (n - 1).bit_length())


def on_gpu() -> bool:
  return jax.default_backend() == 'gpu'


def kernels_available() -> bool:
  return jax.default_backend() in ('gpu', 'cpu')


def per_batch_shard(fn, mesh, in_specs, summed: bool):
  """fn on each device's shard of a batch-sharded mesh: its outputs summed over the devices (a filter
  gradient) or left batch-sharded (a forward). XLA cannot split a Pallas call itself: without this it
  would gather the whole batch onto every device. A batch the mesh does not divide (a model's
  initialisation on a dummy batch, one served image) cannot be batch-sharded: fn runs on it whole."""
  if mesh is None or mesh.size == 1:
    return fn

  def shard(*args):
    out = fn(*args)
    return jax.lax.psum(out, DATA_AXIS) if summed else out

  sharded = jax.shard_map(shard, mesh=mesh, in_specs=in_specs, out_specs=P() if summed else P(DATA_AXIS),
                          check_vma=False)
  return lambda *args: sharded(*args) if args[0].shape[0] % mesh.size == 0 else fn(*args)
