"""What the argmax max-pools of the CIFAR-10 and ResNet models share."""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp


def max_and_first_index(views: Sequence[jax.Array]) -> tuple[jax.Array, jax.Array]:
  """The elementwise max over same-shape `views` (the positions of a pooling window) and, as int8,
  the index of the first view that attains it: the element a max-pool's gradient goes to (PyTorch,
  cuDNN and XLA's select-and-scatter all pick the first)."""
  m = functools.reduce(jnp.maximum, views)
  first = jnp.full(m.shape, len(views) - 1, jnp.int8)
  for p in reversed(range(len(views) - 1)):
    first = jnp.where(views[p] == m, jnp.int8(p), first)
  return m, first
