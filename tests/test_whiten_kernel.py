"""The Pallas whitening + GELU kernel (run by Pallas's interpreter on CPU) against exact arithmetic and XLA."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dawnjax import flops
from dawnjax.models import pallas_support
from dawnjax.models import whiten_kernel as wk
from dawnjax.models.airbench import AirbenchConfig, AirbenchNet, PatchWhiten, WhitenGelu

# (images, height, width, channels, kernel size, features). The output pixels (147, 96, 125, 18) are no
# multiple of the 128-pixel tile, so the last tile is always partial; 24 features exercise the channel mask.
SHAPES = [(3, 8, 8, 3, 2, 32), (2, 9, 7, 3, 2, 24), (5, 6, 6, 1, 2, 16), (2, 5, 5, 1, 3, 16)]


def _inputs(shape, dtype, seed=0):
  n, h, w, c, k, f = shape
  kx, kk, kb = jax.random.split(jax.random.key(seed), 3)
  return (jax.random.normal(kx, (n, h, w, c)).astype(dtype), (jax.random.normal(kk, (k, k, c, f)) * 0.7).astype(dtype),
          (jax.random.normal(kb, (f,)) * 0.3).astype(dtype))


@pytest.mark.parametrize('form', ['dot', 'fma'])
@pytest.mark.parametrize('approximate', [True, False])
@pytest.mark.parametrize('shape', SHAPES)
def test_bf16_output_is_the_exact_gelu_of_the_rounded_sums_correctly_rounded(shape, approximate, form):
  x, kernel, bias = _inputs(shape, jnp.bfloat16)
  y = wk.whiten_gelu(x, kernel, bias, approximate=approximate)
  if form != wk.FORM:  # the other form, with small tiles
    y = wk._pallas_whiten_gelu(x, kernel.astype(x.dtype), bias.astype(jnp.float32), approximate, 32, 2, form)
  y = np.asarray(y, np.float32)
  assert y.shape == (shape[0], shape[1] - shape[4] + 1, shape[2] - shape[4] + 1, shape[5])
  pre = np.asarray(wk.patch_conv_sums(x, kernel, bias).astype(jnp.bfloat16), np.float64)
  exact = (0.5 * pre * (1 + np.tanh(np.sqrt(2 / np.pi) * (pre + 0.044715 * pre**3))) if approximate
           else np.asarray(jax.nn.gelu(jnp.asarray(pre, jnp.float32), approximate=False), np.float64))
  # Within half a bf16 step of the exact value (a hair more for f32 arithmetic on the way); XLA's
  # bf16 GELU rounds inside its steps and misses by more.
  assert np.all(np.abs(y - exact) <= np.abs(exact) * 2**-8 * 1.01 + 1e-6)
  reference = np.asarray(wk.whiten_gelu_reference(x, kernel, bias, approximate), np.float32)
  np.testing.assert_allclose(y, reference, rtol=2**-6, atol=2e-2)


@pytest.mark.parametrize('form', ['dot', 'fma'])
@pytest.mark.parametrize('shape', SHAPES)
def test_the_row_block_grid_computes_what_the_flat_grid_does(shape, form):
  # Blocks of 16 pixels are narrower than the padded rows of 8, 16 or 32 (whole rows are used), 64 cover
  # several rows with a partial last block; the masked padding columns must write nothing.
  x, kernel, bias = _inputs(shape, jnp.bfloat16, seed=3)
  args = (x, kernel.astype(x.dtype), bias.astype(jnp.float32), True)
  flat = np.asarray(wk._pallas_whiten_gelu(*args, 32, 2, form, 'flat'))
  for block in (16, 64):
    np.testing.assert_array_equal(np.asarray(wk._pallas_whiten_gelu(*args, block, 2, form, 'rows')), flat)


@pytest.mark.parametrize('shape', SHAPES[:2])
def test_f32_values_and_all_three_gradients_match_xla(shape):
  x, kernel, bias = _inputs(shape, jnp.float32, seed=1)
  g = jax.random.normal(jax.random.key(2), wk.whiten_gelu(x, kernel, bias, approximate=True).shape)
  ours = lambda x, k, b: jnp.sum(wk.whiten_gelu(x, k, b, approximate=True) * g)
  ref = lambda x, k, b: jnp.sum(wk.whiten_gelu_reference(x, k, b, True) * g)
  np.testing.assert_allclose(ours(x, kernel, bias), ref(x, kernel, bias), rtol=1e-5)
  for a, b in zip(jax.grad(ours, (0, 1, 2))(x, kernel, bias), jax.grad(ref, (0, 1, 2))(x, kernel, bias)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_bad_shapes_are_refused():
  x = jnp.zeros((1, 6, 6, 3))
  with pytest.raises(ValueError, match='fast_tanh'):
    wk.whiten_gelu(x, jnp.zeros((2, 2, 3, 8)), jnp.zeros(8), approximate=False, fast_tanh=True)
  with pytest.raises(ValueError, match='k\\*k\\*C <= 16'):
    wk.whiten_gelu(x, jnp.zeros((3, 3, 3, 8)), jnp.zeros(8), approximate=True)
  with pytest.raises(ValueError, match='bias'):
    wk.whiten_gelu(x, jnp.zeros((2, 2, 3, 8)), jnp.zeros(4), approximate=True)
  with pytest.raises(ValueError, match='NHWC'):
    wk.whiten_gelu(x, jnp.zeros((2, 2, 4, 8)), jnp.zeros(8), approximate=True)


def test_without_the_kernels_it_is_xlas_reference(monkeypatch):
  monkeypatch.setattr(pallas_support, 'kernels_available', lambda: False)  # as on a TPU
  x, kernel, bias = _inputs(SHAPES[0], jnp.bfloat16)
  fn = lambda x, k, b: wk.whiten_gelu(x, k, b, approximate=True)
  assert 'pallas_call' not in str(jax.make_jaxpr(fn)(x, kernel, bias))
  np.testing.assert_array_equal(fn(x, kernel, bias), wk.whiten_gelu_reference(x, kernel, bias, True))


def test_a_symbolic_batch_exports_xlas_reference():
  # jax.export's symbolic batch cannot size the kernel's grid (a served artifact of a Pallas-whitening recipe).
  x, kernel, bias = _inputs(SHAPES[0], jnp.bfloat16)
  fn = jax.jit(lambda x, k, b: wk.whiten_gelu(x, k, b, approximate=True))
  batch, = jax.export.symbolic_shape('b')
  spec = jax.ShapeDtypeStruct((batch, *x.shape[1:]), x.dtype)
  exported = jax.export.export(fn)(spec, kernel, bias)
  assert 'pallas' not in exported.mlir_module() and 'triton' not in exported.mlir_module()
  np.testing.assert_array_equal(exported.call(x, kernel, bias), wk.whiten_gelu_reference(x, kernel, bias, True))
  assert 'pallas_call' in str(jax.make_jaxpr(fn)(x, kernel, bias))  # concrete shapes keep the kernel


def test_whiten_gelu_module_has_patch_whitens_variables_and_gelu_of_its_output():
  x = jax.random.normal(jax.random.key(1), (2, 9, 11, 3))
  ours = WhitenGelu(24, 2, jnp.bfloat16, padded_features=32, gelu_approximate=True, name='whiten')
  patch = PatchWhiten(24, 2, jnp.bfloat16, padded_features=32, name='whiten')
  v_ours, v_patch = ours.init(jax.random.key(0), x), patch.init(jax.random.key(0), x)
  assert jax.tree_util.tree_structure(v_ours) == jax.tree_util.tree_structure(v_patch)
  for a, b in zip(jax.tree_util.tree_leaves(v_ours), jax.tree_util.tree_leaves(v_patch)):
    np.testing.assert_array_equal(a, b)
  params = {'params': {'kernel': v_patch['params']['kernel'], 'bias': jnp.linspace(-1, 1, 24)}}
  y = np.asarray(ours.apply(params, x), np.float32)
  want = np.asarray(nn.gelu(patch.apply(params, x), approximate=True), np.float32)
  assert y.shape == want.shape == (2, 8, 10, 32)
  assert not np.any(y[..., 24:])  # the padded channels are exact zeros
  np.testing.assert_allclose(y, want, rtol=2**-6, atol=2e-2)


def test_net_with_pallas_whitening_agrees_with_elementwise_and_counts_the_same_flops():
  x = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
  nets = {impl: AirbenchNet(AirbenchConfig(widths=(8, 8, 8), dtype='bfloat16', whiten_impl=impl, gelu_approximate=True,
                                           block1_conv1_impl='padded_igemm'))
          for impl in ('elementwise', 'pallas')}
  variables = nets['elementwise'].init(jax.random.key(0), x)
  logits = {impl: net.apply(variables, x) for impl, net in nets.items()}
  np.testing.assert_allclose(logits['pallas'], logits['elementwise'], rtol=3e-2, atol=3e-2)
  counted = {impl: flops.count_flops(lambda v, x, net=net: net.apply(v, x), variables, x) for impl, net in nets.items()}
  assert counted['pallas'] == counted['elementwise'] > 0


@pytest.mark.parametrize('form', ['dot', 'fma'])
@pytest.mark.parametrize('approximate', [True, False])
def test_the_kernel_lowers_to_triton_for_gpus(monkeypatch, approximate, form):
  # Lowering for CUDA needs no GPU. It catches what only the Triton path refuses (erf and erfc have
  # no Triton lowering; the interpreter runs them fine).
  monkeypatch.setattr(pallas_support, 'on_gpu', lambda: True)
  x, kernel, bias = (jnp.zeros((64, 32, 32, 3), jnp.bfloat16), jnp.zeros((2, 2, 3, 32), jnp.bfloat16),
                     jnp.zeros(32, jnp.bfloat16))
  fn = jax.jit(lambda x, k, b: wk._pallas_whiten_gelu(x, k, b.astype(jnp.float32), approximate, form=form))
  text = fn.trace(x, kernel, bias).lower(lowering_platforms=('cuda',)).as_text()
  assert '__gpu$xla.gpu.triton' in text or 'triton' in text.lower()
  if approximate:  # the row grid and the GPU's approximate tanh (inline PTX) lower too
    fn = jax.jit(lambda x, k, b: wk._pallas_whiten_gelu(x, k, b.astype(jnp.float32), True, form=form, grid='rows',
                                                        fast_tanh=True))
    assert 'tanh.approx.f32' in fn.trace(x, kernel, bias).lower(lowering_platforms=('cuda',)).as_text()
