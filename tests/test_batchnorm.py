"""BatchNormAct (hand-written backward) against nn.BatchNorm + activation differentiated by autodiff."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dawnjax.models.airbench import AirbenchConfig, AirbenchNet, activation_fn
from dawnjax.models.batchnorm import BatchNormAct

ACTS = {'gelu': activation_fn('gelu'), 'gelu_tanh': activation_fn('gelu', True), 'silu': activation_fn('silu')}


class Reference(nn.Module):
  act: object
  train: bool

  @nn.compact
  def __call__(self, x):
    return self.act(nn.BatchNorm(use_running_average=not self.train, momentum=0.6, epsilon=1e-5,
                                 use_scale=False, dtype=x.dtype, name='bn')(x))


class Fused(nn.Module):
  act: object
  train: bool

  @nn.compact
  def __call__(self, x):
    return BatchNormAct(not self.train, self.act, 0.6, 1e-5, x.dtype, name='bn')(x)


def _setup(dtype, shape=(4, 5, 5, 6)):
  x = (3.0 * jax.random.normal(jax.random.PRNGKey(0), shape) + 1.5).astype(dtype)
  bias = jax.random.normal(jax.random.PRNGKey(1), shape[-1:]) * 0.3
  # Strongly typed fp32, as real running statistics (a weak type would make Flax normalise in bf16).
  stats = {'bn': {'mean': jnp.full(shape[-1:], 0.7, jnp.float32), 'var': jnp.full(shape[-1:], 4.0, jnp.float32)}}
  return x, {'bn': {'bias': bias}}, stats


@pytest.mark.parametrize('act', sorted(ACTS))
def test_fused_batchnorm_matches_flax_values_gradients_and_running_statistics(act):
  x, params, stats = _setup(jnp.float32)
  g = jax.random.normal(jax.random.PRNGKey(2), x.shape)
  outs = {}
  for name, cls in (('ref', Reference), ('fused', Fused)):
    module = cls(ACTS[act], train=True)

    def loss(p, v, module=module):
      y, new = module.apply({'params': p, 'batch_stats': stats}, v, mutable=['batch_stats'])
      return jnp.sum(y * g), new

    (value, new), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, x)
    outs[name] = (value, new, grads)
  (v_ref, s_ref, (gp_ref, gx_ref)), (v_f, s_f, (gp_f, gx_f)) = outs['ref'], outs['fused']
  np.testing.assert_allclose(v_f, v_ref, rtol=1e-5)
  np.testing.assert_allclose(gx_f, gx_ref, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(gp_f['bn']['bias'], gp_ref['bn']['bias'], rtol=1e-4, atol=1e-5)
  for k in ('mean', 'var'):
    np.testing.assert_allclose(s_f['batch_stats']['bn'][k], s_ref['batch_stats']['bn'][k], rtol=1e-5)
  # The input gradient of a BatchNorm is orthogonal to the constant direction: it sums to 0 per channel.
  np.testing.assert_allclose(jnp.sum(gx_f, (0, 1, 2)), 0.0, atol=1e-3)


def test_fused_batchnorm_eval_mode_and_bfloat16_forward_match_flax():
  x, params, stats = _setup(jnp.bfloat16)
  for train in (False, True):
    ref = Reference(ACTS['gelu'], train).apply({'params': params, 'batch_stats': stats}, x, mutable=['batch_stats'])[0]
    fused = Fused(ACTS['gelu'], train).apply({'params': params, 'batch_stats': stats}, x, mutable=['batch_stats'])[0]
    assert fused.dtype == ref.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(fused, np.float32), np.asarray(ref, np.float32))


def test_airbench_fused_bn_has_the_same_variables_and_outputs():
  cfgs = {impl: AirbenchConfig(widths=(8, 8, 8), dtype='float32', bn_impl=impl) for impl in ('flax', 'fused')}
  x = jax.random.normal(jax.random.PRNGKey(3), (4, 32, 32, 3))
  v = AirbenchNet(cfgs['flax']).init(jax.random.PRNGKey(4), x, train=True)
  assert jax.tree_util.tree_structure(v) == jax.tree_util.tree_structure(
      AirbenchNet(cfgs['fused']).init(jax.random.PRNGKey(4), x, train=True))

  def loss(params, impl):
    y, _ = AirbenchNet(cfgs[impl]).apply({**v, 'params': params}, x, train=True, mutable=['batch_stats'])
    return jnp.sum(jnp.sin(y))

  grads = {impl: jax.grad(functools.partial(loss, impl=impl))(v['params']) for impl in cfgs}
  for a, b in zip(jax.tree_util.tree_leaves(grads['flax']), jax.tree_util.tree_leaves(grads['fused'])):
    np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)
