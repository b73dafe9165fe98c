"""Training-mode BatchNorm fused with the activation after it, with a hand-written backward.

Autodiff of `flax.linen.BatchNorm` followed by an activation differentiates the statistics formula
term by term: ~7 reductions over the activation per layer and a saved copy of the normalised
pre-activation. The textbook backward needs two reductions (sum dz, sum dz * xhat) and recomputes
the pre-activation from the saved input, so each direction is one reduction pass plus one
elementwise pass. Same variables as `nn.BatchNorm(use_scale=False)` ('bias'; batch_stats 'mean',
'var'), so checkpoints and model files are interchangeable between the two implementations.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

_AXES = (0, 1, 2)  # NHWC: statistics per channel over batch and space


def _statistics(x32: jax.Array) -> tuple[jax.Array, jax.Array]:
  # One pass (E[x], E[x^2]) with the variance clipped at zero, as Flax's use_fast_variance.
  mean = jnp.mean(x32, _AXES)
  var = jnp.maximum(jnp.mean(jnp.square(x32), _AXES) - jnp.square(mean), 0.0)
  return mean, var


def _normalise(x32, mean, inv, bias, dtype):
  # Flax's order of operations: (x - mean) * rsqrt(var + eps) + bias in fp32, then the compute dtype.
  return ((x32 - mean) * inv + bias).astype(dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def batch_norm_act(x: jax.Array, bias: jax.Array, act: Callable, epsilon: float, dtype: Any):
  """(act(BatchNorm(x) + bias), batch mean, batch variance). The statistics are outputs for the
  running averages only: no gradient flows back through them (the caller stops it)."""
  y, mean, var, _ = _forward(x, bias, act, epsilon, dtype)
  return y, mean, var


def _forward(x, bias, act, epsilon, dtype):
  x32 = x.astype(jnp.float32)
  mean, var = _statistics(x32)
  inv = jax.lax.rsqrt(var + epsilon)
  return act(_normalise(x32, mean, inv, bias, dtype)), mean, var, inv


def _fwd(x, bias, act, epsilon, dtype):
  y, mean, var, inv = _forward(x, bias, act, epsilon, dtype)
  return (y, mean, var), (x, mean, inv, bias)


def _bwd(act, epsilon, dtype, residuals, cotangents):
  del epsilon
  x, mean, inv, bias = residuals
  gy = cotangents[0]  # the statistics' cotangents are zero: the caller stops their gradient
  x32 = x.astype(jnp.float32)
  xhat = (x32 - mean) * inv
  z = (xhat + bias).astype(dtype)
  _, slope = jax.jvp(act, (z,), (jnp.ones_like(z),))
  dz = gy.astype(jnp.float32) * slope.astype(jnp.float32)
  n = x.shape[0] * x.shape[1] * x.shape[2]
  sum_dz = jnp.sum(dz, _AXES)
  sum_dz_xhat = jnp.sum(dz * xhat, _AXES)
  dx = inv * (dz - sum_dz / n - xhat * (sum_dz_xhat / n))
  return dx.astype(x.dtype), sum_dz.astype(bias.dtype)


batch_norm_act.defvjp(_fwd, _bwd)


class BatchNormAct(nn.Module):
  """`act(nn.BatchNorm(use_scale=False)(x))` for NHWC inputs, with the fused backward above."""
  act: Callable
  use_running_average: bool
  momentum: float
  epsilon: float
  dtype: Any

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    bias = self.param('bias', nn.initializers.zeros, (c,), jnp.float32)
    ra_mean = self.variable('batch_stats', 'mean', lambda: jnp.zeros((c,), jnp.float32))
    ra_var = self.variable('batch_stats', 'var', lambda: jnp.ones((c,), jnp.float32))
    if self.use_running_average:
      inv = jax.lax.rsqrt(ra_var.value + self.epsilon)
      return self.act(_normalise(x.astype(jnp.float32), ra_mean.value, inv, bias, self.dtype))
    y, mean, var = batch_norm_act(x, bias, self.act, self.epsilon, self.dtype)
    if not self.is_initializing():
      m = self.momentum
      ra_mean.value = m * ra_mean.value + (1 - m) * jax.lax.stop_gradient(mean)
      ra_var.value = m * ra_var.value + (1 - m) * jax.lax.stop_gradient(var)
    return y
