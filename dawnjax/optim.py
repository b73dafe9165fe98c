"""Optimizers as optax transforms: SGD-Nesterov per parameter group, Muon, and step masks."""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

# Keller Jordan's Newton-Schulz coefficients (defined without optax, for the recipes' flags): they
# maximise the slope at zero so a few iterations suffice, at the price of not converging exactly to 1.
from dawnjax.recipe_choices import NS_COEFFICIENTS

Schedule = Callable[[jax.Array], jax.Array]


def torch_sgd(lr: float, momentum: float, weight_decay: float, schedule: Schedule) -> optax.GradientTransformation:
  """torch.optim.SGD(nesterov=True, weight_decay=wd) with lr = lr * schedule(step).

  The decay is added to the gradient before momentum, exactly as PyTorch does, so recipes
  published for PyTorch carry over with their numbers unchanged.
  """
  parts = []
  if weight_decay:
    parts.append(optax.add_decayed_weights(weight_decay))
  parts += [optax.trace(decay=momentum, nesterov=True),
            optax.scale_by_schedule(lambda step: -lr * schedule(step))]
  return optax.chain(*parts)


class CountState(NamedTuple):
  count: jax.Array


def freeze_after(num_steps: int) -> optax.GradientTransformation:
  """Zeroes updates from step `num_steps` on (PyTorch's requires_grad=False mid-run)."""

  def init(params):
    del params
    return CountState(jnp.zeros([], jnp.int32))

  def update(updates, state, params=None):
    del params
    live = state.count < num_steps
    updates = jax.tree_util.tree_map(lambda u: jnp.where(live, u, jnp.zeros_like(u)), updates)
    return updates, CountState(state.count + 1)

  return optax.GradientTransformation(init, update)


def newton_schulz(g: jax.Array, steps: int = 3, eps: float = 1e-7, dtype=jnp.bfloat16,
                  coefficients: Sequence[float] = NS_COEFFICIENTS) -> jax.Array:
  """Approximately orthogonalises a matrix (its singular values pushed towards 1), in bf16.

  Each iteration is X <- a X + (b A + c A^2) X with A = X X^T, (a, b, c) = `coefficients`.
  """
  a, b, c = coefficients
  x = g.astype(dtype)
  x = x / (jnp.linalg.norm(x.astype(jnp.float32)).astype(dtype) + eps)
  transpose = x.shape[0] > x.shape[1]
  if transpose:
    x = x.T
  for _ in range(steps):
    gram = x @ x.T
    x = a * x + (b * gram + c * gram @ gram) @ x
  return x.T if transpose else x


class MuonState(NamedTuple):
  count: jax.Array
  momentum: optax.Params


def muon(lr: float, momentum: float, schedule: Schedule, ns_steps: int = 3, ns_dtype=jnp.bfloat16,
         ns_coefficients: Sequence[float] = NS_COEFFICIENTS, norm_every: int = 1,
         weight_decay: float = 0.0) -> optax.GradientTransformation:
  """Muon as in airbench94_muon: Nesterov momentum, orthogonalised update, weight renormalisation.

  Each filter bank (kh, kw, cin, cout) is treated as a (kh*kw*cin, cout) matrix, and its weight is
  rescaled to norm sqrt(cout) before the step, so the learning rate sets an angle, not a length.
  `norm_every` > 1 renormalises only on every norm_every-th step; `weight_decay` > 0 then
  multiplies the new weight by (1 - step_lr * weight_decay), decay decoupled from the gradient
  (both as hiverge cifar10-speedrun). The defaults build exactly airbench94_muon's program.
  """

  def init(params):
    return MuonState(jnp.zeros([], jnp.int32), jax.tree_util.tree_map(jnp.zeros_like, params))

  def update(grads, state, params):
    step_lr = lr * schedule(state.count)
    buf = jax.tree_util.tree_map(lambda m, g: momentum * m + g, state.momentum, grads)
    # hiverge counts optimizer calls from 1 (`step_count += 1` before `step_count % norm_freq == 0`),
    # so it renormalises on calls norm_every, 2 * norm_every, ...: our 0-based count + 1.
    renorm = None if norm_every == 1 else (state.count + 1) % norm_every == 0

    def leaf_update(g, m, p):
      g = g + momentum * m
      mat = g.reshape(-1, g.shape[-1])
      ortho = newton_schulz(mat, ns_steps, dtype=ns_dtype,
                            coefficients=ns_coefficients).reshape(g.shape).astype(p.dtype)
      scale = jnp.sqrt(jnp.asarray(p.shape[-1], jnp.float32)) / jnp.linalg.norm(p)
      if renorm is not None:
        scale = jnp.where(renorm, scale, jnp.ones_like(scale))
      if not weight_decay:
        return p * (scale - 1.0) - step_lr * ortho
      return (p * scale - step_lr * ortho) * (1.0 - step_lr * weight_decay) - p

    updates = jax.tree_util.tree_map(leaf_update, grads, buf, params)
    return updates, MuonState(state.count + 1, buf)

  return optax.GradientTransformation(init, update)


def airbench_sgd_schedule(total_steps: int, warmup_frac: float = 0.23, start: float = 0.2,
                          end: float = 0.07) -> Schedule:
  """airbench94's triangular schedule: linear up from `start`, then down to `end`."""
  warmup = int(total_steps * warmup_frac)

  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    up = start + (1.0 - start) * step / max(warmup, 1)
    down = 1.0 + (end - 1.0) * (step - warmup) / max(total_steps - warmup, 1)
    return jnp.where(step < warmup, up, down)

  return schedule


def linear_decay(total_steps: int) -> Schedule:
  return lambda step: 1.0 - jnp.asarray(step, jnp.float32) / total_steps
