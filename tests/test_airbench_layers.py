"""The airbench layers' alternative implementations (whitening, block1's first conv) compute the same network."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dawnjax.models.airbench import (AirbenchConfig, AirbenchNet, KwFoldedConv, PaddedIgemmConv, PatchWhiten,
                                     dirac_uniform_init, whitening_kernel)
import flax.linen as nn


@pytest.mark.parametrize('form', ['elementwise', 'matmul'])
def test_patch_whiten_is_the_valid_conv_with_the_same_variables_and_gradients(form):
  x = jax.random.normal(jax.random.key(1), (3, 9, 11, 3))
  conv = nn.Conv(24, (2, 2), padding='VALID', name='whiten')
  patch = PatchWhiten(24, 2, form=form, name='whiten')
  v_conv, v_patch = conv.init(jax.random.key(0), x), patch.init(jax.random.key(0), x)
  for a, b in zip(jax.tree_util.tree_leaves(v_conv), jax.tree_util.tree_leaves(v_patch)):
    np.testing.assert_array_equal(a, b)  # same names, shapes and initial values
  kernel = whitening_kernel(x, 2)
  params = {'params': {'kernel': kernel, 'bias': jnp.linspace(-1, 1, 24)}}
  out = patch.apply(params, x)
  assert out.shape == (3, 8, 10, 24)
  np.testing.assert_allclose(out, conv.apply(params, x), rtol=1e-5, atol=1e-5)
  g_conv, g_patch = (jax.grad(lambda p, m=m: jnp.sum(jnp.tanh(m.apply(p, x))))(params) for m in (conv, patch))
  for a, b in zip(jax.tree_util.tree_leaves(g_conv), jax.tree_util.tree_leaves(g_patch)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('form', ['elementwise', 'matmul'])
def test_patch_whiten_padded_features_are_exact_zeros_after_the_real_ones(form):
  x = jax.random.normal(jax.random.key(1), (2, 6, 6, 3))
  params = {'params': {'kernel': jax.random.normal(jax.random.key(2), (2, 2, 3, 24)), 'bias': jnp.linspace(-1, 1, 24)}}
  plain = PatchWhiten(24, 2, form=form).apply(params, x)
  padded = PatchWhiten(24, 2, padded_features=32, form=form).apply(params, x)
  assert padded.shape == (2, 5, 5, 32)
  np.testing.assert_array_equal(padded[..., :24], plain)
  assert not np.any(np.asarray(padded[..., 24:]))


@pytest.mark.parametrize('dtype', ['float32', 'bfloat16'])
def test_airbench_net_logits_agree_between_whitening_forms(dtype):
  x = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
  nets = {impl: AirbenchNet(AirbenchConfig(widths=(8, 8, 8), dtype=dtype, whiten_impl=impl,
                                           block1_conv1_impl='padded_igemm'))
          for impl in ('elementwise', 'matmul')}
  variables = nets['elementwise'].init(jax.random.key(0), x)
  logits = {impl: net.apply(variables, x) for impl, net in nets.items()}
  tol = 1e-5 if dtype == 'float32' else 2e-2  # bf16: the same f32 sums in another order, then rounded
  np.testing.assert_allclose(logits['matmul'], logits['elementwise'], rtol=tol, atol=tol)


def test_padded_igemm_conv_is_the_same_conv_on_zero_padded_channels_with_the_same_variables_and_gradients():
  x = jax.random.normal(jax.random.key(1), (2, 7, 9, 5))
  padded = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, 3)))  # what AirbenchNet's whitening pass writes
  conv = nn.Conv(8, (3, 3), padding='SAME', use_bias=False, kernel_init=dirac_uniform_init, name='conv1')
  ours = PaddedIgemmConv(8, 5, name='conv1')
  v_conv, v_ours = conv.init(jax.random.key(0), x), ours.init(jax.random.key(0), padded)
  for a, b in zip(jax.tree_util.tree_leaves(v_conv), jax.tree_util.tree_leaves(v_ours)):
    np.testing.assert_array_equal(a, b)  # the kernel keeps the real channel count and initial values
  params = {'params': {'kernel': jax.random.normal(jax.random.key(2), (3, 3, 5, 8))}}
  np.testing.assert_allclose(ours.apply(params, padded), conv.apply(params, x), rtol=1e-5, atol=1e-5)
  loss = lambda m: lambda p, x: jnp.sum(jnp.tanh(m.apply(p, x)) * jnp.arange(8.0))
  g_conv, g_ours = jax.grad(loss(conv))(params, x), jax.grad(loss(ours))(params, padded)
  np.testing.assert_allclose(g_ours['params']['kernel'], g_conv['params']['kernel'], rtol=1e-4, atol=1e-4)
  dx_conv, dx_ours = jax.grad(loss(conv), argnums=1)(params, x), jax.grad(loss(ours), argnums=1)(params, padded)
  np.testing.assert_allclose(dx_ours[..., :5], dx_conv, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('dtype', ['float32', 'bfloat16'])
def test_airbench_net_logits_agree_between_whiten_impls(dtype):
  x = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
  nets = {impl: AirbenchNet(AirbenchConfig(widths=(8, 8, 8), dtype=dtype, whiten_impl=impl))
          for impl in ('conv', 'elementwise')}
  variables = nets['conv'].init(jax.random.key(0), x)
  logits = {impl: net.apply(variables, x) for impl, net in nets.items()}
  # f32 agrees to rounding; bf16 rounds the conv's output once more before its bias (nn.Conv).
  tol = 1e-5 if dtype == 'float32' else 2e-2
  np.testing.assert_allclose(logits['elementwise'], logits['conv'], rtol=tol, atol=tol)
  assert logits['elementwise'].dtype == jnp.float32


def test_an_unknown_whiten_impl_is_a_config_error():
  from dawnjax.errors import ConfigError
  from dawnjax.workloads.cifar10_recipe import CifarRecipe
  with pytest.raises(ConfigError, match='--whiten_impl'):
    CifarRecipe(whiten_impl='fft').validate()
  for bad in (dict(whiten_impl='elementwise', gelu_approximate=True), dict(whiten_impl='pallas')):
    with pytest.raises(ConfigError, match='--whiten_fast_tanh'):
      CifarRecipe(whiten_fast_tanh=True, **bad).validate()
  CifarRecipe(whiten_fast_tanh=True, whiten_impl='pallas', gelu_approximate=True).validate()



def test_kw_folded_conv_is_the_same_conv_with_the_same_variables_and_gradients():
  x = jax.random.normal(jax.random.key(1), (2, 7, 9, 5))
  conv = nn.Conv(6, (3, 3), padding='SAME', use_bias=False, kernel_init=dirac_uniform_init, name='conv1')
  folded = KwFoldedConv(6, name='conv1')
  v_conv, v_folded = conv.init(jax.random.key(0), x), folded.init(jax.random.key(0), x)
  for a, b in zip(jax.tree_util.tree_leaves(v_conv), jax.tree_util.tree_leaves(v_folded)):
    np.testing.assert_array_equal(a, b)  # same names, shapes and initial values
  # A kernel with no symmetry, so a wrong tap order or border cannot agree by accident.
  params = {'params': {'kernel': jax.random.normal(jax.random.key(2), (3, 3, 5, 6))}}
  out = folded.apply(params, x)
  assert out.shape == (2, 7, 9, 6)
  np.testing.assert_allclose(out, conv.apply(params, x), rtol=1e-5, atol=1e-5)
  loss = lambda m: lambda p, x: jnp.sum(jnp.tanh(m.apply(p, x)) * jnp.arange(6.0))
  for argnum in (0, 1):  # the filter gradient and the input gradient
    g_conv, g_folded = (jax.grad(loss(m), argnums=argnum)(params, x) for m in (conv, folded))
    for a, b in zip(jax.tree_util.tree_leaves(g_conv), jax.tree_util.tree_leaves(g_folded)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('dtype', ['float32', 'bfloat16'])
def test_airbench_net_logits_agree_between_block1_conv1_impls(dtype):
  x = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
  nets = {impl: AirbenchNet(AirbenchConfig(widths=(8, 8, 8), dtype=dtype, whiten_impl='elementwise',
                                           block1_conv1_impl=impl, pool_impl='argmax'))
          for impl in ('conv', 'kw_folded', 'padded_igemm', 'padded_igemm_pool')}
  variables = nets['conv'].init(jax.random.key(0), x)
  logits = {impl: net.apply(variables, x) for impl, net in nets.items()}
  tol = 1e-5 if dtype == 'float32' else 2e-2  # bf16: the same sums in another order
  for impl in ('kw_folded', 'padded_igemm', 'padded_igemm_pool'):
    other = nets[impl].init(jax.random.key(0), x)
    assert jax.tree_util.tree_map(np.shape, other) == jax.tree_util.tree_map(np.shape, variables)
    np.testing.assert_allclose(logits[impl], logits['conv'], rtol=tol, atol=tol)


def test_an_unknown_block1_conv1_impl_is_a_config_error():
  from dawnjax.errors import ConfigError
  from dawnjax.workloads.cifar10_recipe import CifarRecipe
  with pytest.raises(ConfigError, match='--block1_conv1_impl'):
    CifarRecipe(block1_conv1_impl='winograd').validate()
  with pytest.raises(ConfigError, match='power of two'):
    CifarRecipe(block1_conv1_impl='padded_igemm', widths=(96, 256, 256)).validate()
  CifarRecipe(block1_conv1_impl='padded_igemm', widths=(64, 256, 256)).validate()
  with pytest.raises(ConfigError, match='--pool_impl=argmax'):
    CifarRecipe(block1_conv1_impl='padded_igemm_pool', pool_impl='reshape').validate()
  CifarRecipe(block1_conv1_impl='padded_igemm_pool', pool_impl='argmax').validate()


def test_the_fused_pool_backward_gives_the_nets_gradients_of_padded_igemm_then_argmax_pool():
  x = jax.random.normal(jax.random.key(2), (4, 32, 32, 3))
  nets = {impl: AirbenchNet(AirbenchConfig(widths=(16, 8, 8), whiten_impl='elementwise', pool_impl='argmax',
                                           block1_conv1_impl=impl))
          for impl in ('padded_igemm', 'padded_igemm_pool')}
  variables = nets['padded_igemm'].init(jax.random.key(0), x)

  def grads(net):
    loss = lambda p: net.apply({'params': p, 'batch_stats': variables['batch_stats']}, x, train=True,
                               mutable=['batch_stats'])[0].sum()
    return jax.grad(loss)(variables['params'])

  ours, ref = grads(nets['padded_igemm_pool']), grads(nets['padded_igemm'])
  assert np.abs(np.asarray(ref['block1']['conv1']['kernel'])).max() > 0
  for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(ref)):
    np.testing.assert_array_equal(a, b)
