"""What the argmax max-pools of the CIFAR-10 and ResNet models share."""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def max_and_first_index(views: Sequence[jax.Array]) -> tuple[jax.Array, jax.Array]:
  """The elementwise max over same-shape `views` (the positions of a pooling window) and, as int8,
  the index of the first view that attains it: the element a max-pool's gradient goes to (PyTorch,
  cuDNN and XLA's select-and-scatter all pick the first)."""
  m = functools.reduce(jnp.maximum, views)
  first = jnp.full(m.shape, len(views) - 1, jnp.int8)
  for p in reversed(range(len(views) - 1)):
    first = jnp.where(views[p] == m, jnp.int8(p), first)
  return m, first


def window_views(x: jax.Array, k: int) -> list[jax.Array]:
  """The k*k strided views of x (NHWC, floor-cropped) for a non-overlapping k x k pool, one per
  position in the window, in row-major window order."""
  b, h, w, c = x.shape
  xr = x[:, :h // k * k, :w // k * k].reshape(b, h // k, k, w // k, k, c)
  return [xr[:, :, i, :, j, :] for i in range(k) for j in range(k)]


def gradient_to_first_max(g: jax.Array, first: jax.Array, k: int, pad_h: int, pad_w: int) -> jax.Array:
  """The backward of a non-overlapping k x k argmax pool: the pooled gradient g (N, H/k, W/k, C) at
  the input's full size (H, W = the pooled size * k + the floor-cropped pad), each window's gradient
  at its first maximum (`first`, as max_and_first_index gives it) and zero elsewhere.

  One pass at the full size: each input pixel reads its window's gradient and index (a gather along
  H and W with constant indices) and keeps the gradient if it is the window's first maximum; the
  cropped last rows/columns (index -1 never matches) get zero. Written on the cropped grid and then
  padded, the odd sizes cost XLA a second full pass (the H200 profile's block2 select + pad, 0.2 ms of
  a 4 ms step)."""
  _, h2, w2, _ = g.shape
  rows, cols = np.arange(h2 * k + pad_h), np.arange(w2 * k + pad_w)
  pos = (rows % k)[:, None] * k + (cols % k)[None, :]
  pos = np.where((rows < h2 * k)[:, None] & (cols < w2 * k)[None, :], pos, -1).astype(np.int8)
  ih, iw = np.minimum(rows // k, h2 - 1), np.minimum(cols // k, w2 - 1)
  window_grad, window_first = g[:, ih][:, :, iw], first[:, ih][:, :, iw]
  return jnp.where(window_first == pos[None, :, :, None], window_grad, jnp.zeros((), g.dtype))
