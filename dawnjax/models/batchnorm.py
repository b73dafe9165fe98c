"""Training-mode BatchNorm fused with the activation after it, with a hand-written backward.

Autodiff of a BatchNorm followed by an activation differentiates the statistics formula term by
term: ~7 reductions over the activation per layer and a saved copy of the normalised
pre-activation. The textbook backward needs two reductions (sum dz, sum dz * xhat, which also give
the bias and scale gradients) and recomputes the pre-activation from the saved input, so each
direction is one reduction pass plus one elementwise pass. The module keeps the variables of the
BatchNorm it replaces ('scale' if used, 'bias'; batch_stats 'mean', 'var'), so checkpoints and
model files are interchangeable between the implementations.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

_AXES = (1, 2, 3)  # of (groups, batch/groups, H, W, C): statistics per group and channel


def _normalise(x32, mean, mul, bias, folded: bool):
  # folded: x * mul + (bias - mean * mul), one multiply-add (dawnjax's ResNet BatchNorm);
  # otherwise Flax's order, (x - mean) * mul + bias. Same value up to rounding.
  if folded:
    return x32 * mul + (bias - mean * mul)
  return (x32 - mean) * mul + bias


def _forward(x, scale, bias, act, epsilon, dtype, groups, folded):
  g = x.reshape((groups, x.shape[0] // groups) + x.shape[1:]).astype(jnp.float32)
  # One pass (E[x], E[x^2]), variance clipped at zero, as Flax's use_fast_variance.
  mean = jnp.mean(g, _AXES, keepdims=True)
  var = jnp.maximum(jnp.mean(jnp.square(g), _AXES, keepdims=True) - jnp.square(mean), 0.0)
  inv = jax.lax.rsqrt(var + epsilon)
  y = act(_normalise(g, mean, scale * inv, bias, folded).astype(dtype)).reshape(x.shape)
  return y, mean, var, inv


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6, 7))
def batch_norm_act(x, scale, bias, act: Callable, epsilon: float, dtype: Any, groups: int = 1,
                   folded: bool = False):
  """(act(BatchNorm(x)), mean, var) for NHWC x, statistics over each of `groups` equal slices of
  the batch (ghost BatchNorm; 1 = the whole batch), shaped (groups, 1, 1, 1, C). The statistics
  are outputs for the running averages only: no gradient flows back through them."""
  y, mean, var, _ = _forward(x, scale, bias, act, epsilon, dtype, groups, folded)
  return y, mean, var


def _fwd(x, scale, bias, act, epsilon, dtype, groups, folded):
  y, mean, var, inv = _forward(x, scale, bias, act, epsilon, dtype, groups, folded)
  return (y, mean, var), (x, scale, bias, mean, inv)


def _bwd(act, epsilon, dtype, groups, folded, residuals, cotangents):
  del epsilon
  x, scale, bias, mean, inv = residuals
  gy = cotangents[0]  # the statistics' cotangents are zero: callers stop their gradient
  shape = (groups, x.shape[0] // groups) + x.shape[1:]
  g = x.reshape(shape).astype(jnp.float32)
  xhat = (g - mean) * inv
  z = _normalise(g, mean, scale * inv, bias, folded).astype(dtype)
  _, slope = jax.jvp(act, (z,), (jnp.ones_like(z),))
  dz = gy.reshape(shape).astype(jnp.float32) * slope.astype(jnp.float32)
  count = shape[1] * shape[2] * shape[3]
  sum_dz = jnp.sum(dz, _AXES, keepdims=True)
  sum_dz_xhat = jnp.sum(dz * xhat, _AXES, keepdims=True)
  dx = (scale * inv) * (dz - sum_dz / count - xhat * (sum_dz_xhat / count))
  per_channel = lambda v: jnp.sum(v, axis=(0, 1, 2, 3))
  return (dx.reshape(x.shape).astype(x.dtype), per_channel(sum_dz_xhat).astype(scale.dtype),
          per_channel(sum_dz).astype(bias.dtype))


batch_norm_act.defvjp(_fwd, _bwd)


def _identity(v):
  return v


class BatchNormAct(nn.Module):
  """`act(BatchNorm(x))` for NHWC inputs: fp32 statistics over the whole batch, or over ghost
  batches of `ghost_size`; with the fused backward above, or differentiated by autodiff
  (`hand_written_backward=False`: the same forward, plain jnp ops).

  use_scale=False is airbench's BatchNorm (nn.BatchNorm(use_scale=False), Flax's order of
  operations); use_scale=True with folded=True is dawnjax's ResNet BatchNorm (resnet.BatchNorm).
  """
  use_running_average: bool
  act: Callable = _identity
  momentum: float = 0.9
  epsilon: float = 1e-5
  dtype: Any = jnp.float32
  use_scale: bool = False
  scale_init: Callable = nn.initializers.ones
  ghost_size: int | None = None
  folded: bool = False
  hand_written_backward: bool = True

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    if self.use_scale:
      scale = self.param('scale', self.scale_init, (c,), jnp.float32)
    else:
      scale = jnp.ones((c,), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (c,), jnp.float32)
    ra_mean = self.variable('batch_stats', 'mean', lambda: jnp.zeros((c,), jnp.float32))
    ra_var = self.variable('batch_stats', 'var', lambda: jnp.ones((c,), jnp.float32))
    if self.use_running_average:
      mul = scale * jax.lax.rsqrt(ra_var.value + self.epsilon)
      return self.act(_normalise(x.astype(jnp.float32), ra_mean.value, mul, bias, self.folded).astype(self.dtype))
    n = x.shape[0]
    k = self.ghost_size or n
    if n % k:
      raise ValueError(f'ghost BatchNorm: batch of {n} is not a multiple of ghost_batch_size={k}')
    args = (x, scale, bias, self.act, self.epsilon, self.dtype, n // k, self.folded)
    if self.hand_written_backward:
      y, mean, var = batch_norm_act(*args)
    else:
      y, mean, var, _ = _forward(*args)
    if not self.is_initializing():
      m = self.momentum
      flat = lambda v: jnp.mean(jax.lax.stop_gradient(v).reshape(-1, c), axis=0)  # mean over groups
      ra_mean.value = m * ra_mean.value + (1 - m) * flat(mean)
      ra_var.value = m * ra_var.value + (1 - m) * flat(var)
    return y
