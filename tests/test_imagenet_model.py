"""ResNet v1.5 model: sizes, stride placement, zero-init, ghost BatchNorm, space-to-depth, dtypes."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dawnjax.models import resnet

# torchvision's parameter counts (weights + BN gamma/beta + fc bias) for 1000 classes.
TORCHVISION_PARAMS = {'resnet18': 11689512, 'resnet34': 21797672, 'resnet50': 25557032,
                      'resnet101': 44549160, 'resnet152': 60192808}


def _shapes(model, size=224, n=2):
  return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((n, size, size, 3)), train=True))


@pytest.mark.parametrize('name', sorted(TORCHVISION_PARAMS))
def test_parameter_counts_match_torchvision(name):
  variables = _shapes(resnet.create_resnet(name))
  count = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(variables['params']))
  assert count == TORCHVISION_PARAMS[name]
  assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(variables))


def test_unknown_model_names_the_choices():
  with pytest.raises(ValueError, match='resnet50'):
    resnet.create_resnet('resnet51')


def test_v15_stride_sits_in_the_3x3_conv():
  model = resnet.create_resnet('resnet26', num_filters=8, num_classes=7, dtype=jnp.float32)
  x = jnp.ones((2, 64, 64, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=True))
  _, state = jax.eval_shape(lambda v: model.apply(v, x, train=False, capture_intermediates=True,
                                                  mutable=['intermediates']), variables)
  block = state['intermediates']['stage2_block1']
  # Input to stage 2 is 16x16 (stem /4); v1.5 keeps 16 through the 1x1 and halves in the 3x3.
  assert block['conv1']['__call__'][0].shape[1:3] == (16, 16)
  assert block['conv2']['__call__'][0].shape[1:3] == (8, 8)
  assert variables['params']['stage2_block1']['conv2']['kernel'].shape == (3, 3, 16, 16)


@pytest.mark.parametrize('block_cls,last', [(resnet.BottleneckBlock, 'bn3'), (resnet.BasicBlock, 'bn2')])
def test_last_bn_gamma_of_each_block_starts_at_zero(block_cls, last):
  conv = functools.partial(nn.Conv, use_bias=False)
  norm = functools.partial(resnet.BatchNorm, use_running_average=False)
  x = jnp.ones((2, 8, 8, 4))
  for zero_init, value in ((True, 0.0), (False, 1.0)):
    block = block_cls(8, conv=conv, norm=norm, strides=(2, 2), zero_init_residual=zero_init)
    params = jax.jit(lambda x: block.init(jax.random.key(0, impl='rbg'), x))(x)['params']
    np.testing.assert_array_equal(params[last]['scale'], value)
    np.testing.assert_array_equal(params['bn1']['scale'], 1.0)
    assert 'proj_conv' in params  # shape changes: projection shortcut


def test_bf16_compute_with_fp32_params_and_logits():
  model = resnet.create_resnet('resnet10', num_filters=8, num_classes=5)  # bf16 by default
  x = jnp.ones((2, 32, 32, 3), jnp.bfloat16)
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=True))
  (logits, state) = jax.eval_shape(lambda v: model.apply(
      v, x, train=True, mutable=['batch_stats', 'intermediates'], capture_intermediates=True), variables)
  assert logits.dtype == jnp.float32 and logits.shape == (2, 5)
  assert state['intermediates']['stem_conv']['__call__'][0].dtype == jnp.bfloat16
  assert all(v.dtype == jnp.float32 for v in jax.tree_util.tree_leaves(state['batch_stats']))
  assert all(v.dtype == jnp.float32 for v in jax.tree_util.tree_leaves(variables['params']))


def _bn_reference(x, eps=1e-5):
  mean = x.mean(axis=(0, 1, 2))
  var = x.var(axis=(0, 1, 2))
  return (x - mean) / np.sqrt(var + eps), mean, var


def test_ghost_batchnorm_normalises_each_group_by_its_own_statistics():
  x = np.random.default_rng(0).normal(2.0, 3.0, (8, 3, 3, 4)).astype(np.float32)
  ghost = resnet.BatchNorm(use_running_average=False, momentum=0.5, ghost_size=4)
  variables = ghost.init(jax.random.PRNGKey(0), x)
  y, state = ghost.apply(variables, x, mutable=['batch_stats'])
  ref_a, mean_a, var_a = _bn_reference(x[:4])
  ref_b, mean_b, var_b = _bn_reference(x[4:])
  np.testing.assert_allclose(y, np.concatenate([ref_a, ref_b]), rtol=1e-4, atol=1e-4)
  # Running statistics take the mean over groups.
  np.testing.assert_allclose(state['batch_stats']['mean'], 0.5 * (mean_a + mean_b) / 2, rtol=1e-5)
  np.testing.assert_allclose(state['batch_stats']['var'], 0.5 + 0.5 * (var_a + var_b) / 2, rtol=1e-4)
  # Global BN (and a ghost size equal to the batch) normalise over the whole batch.
  for k in (None, 8):
    bn = resnet.BatchNorm(use_running_average=False, ghost_size=k)
    y, _ = bn.apply(bn.init(jax.random.PRNGKey(0), x), x, mutable=['batch_stats'])
    np.testing.assert_allclose(y, _bn_reference(x)[0], rtol=1e-4, atol=1e-4)
  with pytest.raises(ValueError, match='multiple'):
    resnet.BatchNorm(use_running_average=False, ghost_size=3).init(jax.random.PRNGKey(0), x)


def test_space_to_depth_stem():
  x = jnp.arange(2 * 4 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 4, 3)
  y = resnet.space_to_depth(x, 2)
  assert y.shape == (2, 2, 2, 12)
  np.testing.assert_array_equal(y[0, 1, 0], jnp.concatenate([x[0, 2, 0], x[0, 2, 1], x[0, 3, 0], x[0, 3, 1]]))
  plain = _shapes(resnet.create_resnet('resnet50'))
  s2d = _shapes(resnet.create_resnet('resnet50', space_to_depth_stem=True))
  assert s2d['params']['stem_conv']['kernel'].shape == (4, 4, 12, 64)
  model = resnet.create_resnet('resnet50', space_to_depth_stem=True)
  out = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((2, 224, 224, 3)), train=False), s2d)
  assert out.shape == (2, 1000)
  assert plain['params']['stage1_block1']['conv1']['kernel'].shape == s2d['params']['stage1_block1']['conv1']['kernel'].shape


def test_fused_batchnorm_resnet_matches_autodiff_batchnorm():
  # bn_impl='fused': BatchNorm + ReLU with the hand-written backward. Same variables; the
  # forward, the running statistics and every gradient agree with autodiff of the plain BatchNorm.
  # Bottleneck blocks (ReLU after bn1/bn2, none after bn3, a projection BN) with ghost batches of 2.
  models = {impl: resnet.create_resnet('resnet26', num_filters=4, num_classes=5, dtype=jnp.float32,
                                       ghost_batch_size=2, bn_impl=impl) for impl in resnet.BN_IMPLS}
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 16, 16, 3))
  variables = jax.jit(functools.partial(models['flax'].init, train=True))(jax.random.PRNGKey(1), x)
  assert jax.tree_util.tree_structure(variables) == jax.tree_util.tree_structure(
      jax.eval_shape(functools.partial(models['fused'].init, train=True), jax.random.PRNGKey(1), x))
  # Non-zero last-BN gammas, so the residual branches (and their gradients) are exercised.
  params = jax.tree_util.tree_map(lambda p: p + 0.1, variables['params'])

  def loss(p, impl):
    y, new = models[impl].apply({'params': p, 'batch_stats': variables['batch_stats']}, x, train=True,
                                mutable=['batch_stats'])
    return jnp.sum(jnp.sin(y)), new

  out = {impl: jax.jit(jax.value_and_grad(functools.partial(loss, impl=impl), has_aux=True))(params)
         for impl in models}
  (v_a, s_a), g_a = out['flax']
  (v_b, s_b), g_b = out['fused']
  np.testing.assert_allclose(v_b, v_a, rtol=1e-4)
  for a, b in zip(jax.tree_util.tree_leaves(s_a) + jax.tree_util.tree_leaves(g_a),
                  jax.tree_util.tree_leaves(s_b) + jax.tree_util.tree_leaves(g_b)):
    np.testing.assert_allclose(b, a, rtol=2e-3, atol=2e-5)


@pytest.mark.parametrize('shape', [(2, 8, 8, 3), (2, 7, 9, 2)])
@pytest.mark.parametrize('ties', [False, True])
def test_argmax_stem_pool_matches_flax_max_pool_values_and_gradients(shape, ties):
  # Ties (small integers) check that the gradient goes to the same element as XLA's
  # select-and-scatter: each window's first maximum in row-major order.
  from dawnjax.models.resnet import stem_max_pool
  rng = np.random.default_rng(0)
  x = (rng.integers(0, 3, size=shape) if ties else rng.normal(size=shape)).astype(np.float32)
  ct = rng.normal(size=(shape[0], (shape[1] + 1) // 2, (shape[2] + 1) // 2, shape[3])).astype(np.float32)
  out = {}
  for impl in ('window', 'argmax'):
    y, vjp = jax.vjp(lambda v, impl=impl: stem_max_pool(v, impl), x)
    out[impl] = (np.asarray(y), np.asarray(vjp(ct)[0]))
  np.testing.assert_array_equal(out['argmax'][0], out['window'][0])
  np.testing.assert_allclose(out['argmax'][1], out['window'][1], rtol=0, atol=1e-6)
  assert np.count_nonzero(out['argmax'][1]) > 0
  with pytest.raises(ValueError, match='stem pool'):
    stem_max_pool(x, 'reshape')


@pytest.mark.parametrize('name,space_to_depth', [('resnet10', False), ('resnet26', True)])
def test_folded_batchnorm_is_the_same_function_with_one_bias_per_norm(name, space_to_depth):
  kw = dict(num_classes=7, num_filters=8, dtype=jnp.float32, space_to_depth_stem=space_to_depth)
  model = resnet.create_resnet(name, **kw)
  x = jax.random.normal(jax.random.PRNGKey(1), (3, 32, 32, 3))
  variables = model.init(jax.random.PRNGKey(0), x, train=False)
  rng = np.random.default_rng(0)

  def trained_like(path, leaf):  # every BatchNorm away from the identity, so that folding is exercised
    key = jax.tree_util.keystr(path)
    if "'var'" in key or "'scale'" in key:
      return rng.uniform(0.5, 2.0, leaf.shape).astype(leaf.dtype)
    if "'mean'" in key or "'bias'" in key:
      return rng.normal(0, 0.5, leaf.shape).astype(leaf.dtype)
    return np.asarray(leaf) * 1.0

  variables = jax.tree_util.tree_map_with_path(trained_like, variables)
  folded_model = resnet.create_resnet(name, folded_batchnorm=True, **kw)
  folded = resnet.fold_batchnorm(variables, 1e-5)
  expected = jax.eval_shape(lambda: folded_model.init(jax.random.PRNGKey(0), x, train=False))
  assert jax.tree_util.tree_structure(folded) == jax.tree_util.tree_structure(expected)
  assert set(folded['params']['stem_bn']) == {'bias'}
  want = model.apply(variables, x, train=False)
  got = folded_model.apply(folded, x, train=False)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(want))))
  with pytest.raises(ValueError, match='inference form'):
    folded_model.init(jax.random.PRNGKey(0), x, train=True)
