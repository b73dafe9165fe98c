"""The Pallas implicit-GEMM 3x3 conv (run by Pallas's interpreter on CPU) against XLA's convolution."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dawnjax.models import implicit_gemm_conv as ig
from dawnjax.models import pallas_support


# (images, height, width, channels, features, pixels per tile). The tiles never divide the images'
# pixels, and 3 filter-gradient programs per kernel row never divide the tiles, so the masks for
# the image borders, the last tile and the batch overrun are all exercised.
SHAPES = [(3, 7, 7, 24, 64, 16), (2, 5, 6, 3, 16, 16), (2, 7, 5, 32, 32, 32)]


@pytest.mark.parametrize('grid', ['flat', 'rows'])
@pytest.mark.parametrize('forward', ['pallas', 'xla'])
@pytest.mark.parametrize('shape', SHAPES)
def test_forward_and_both_gradients_match_xla_convolution(shape, forward, grid):
  # 'rows': the filter gradient's tiles are whole rows padded to a power of two (16 pixels = 2 rows of 8,
  # 32 = 4 rows of 8 or 2 of 16; the masked padding columns must add nothing).
  n, h, w, c, f, block = shape
  tiling = ig.Tiling(fwd_block=block, wgrad_block=block, wgrad_programs=3, wgrad_grid=grid)
  kx, kw, kg = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (n, h, w, c))
  kernel = jax.random.normal(kw, (3, 3, c, f)) * 0.2  # no symmetry: a wrong tap or border cannot agree
  g = jax.random.normal(kg, (n, h, w, f))
  y = ig.implicit_gemm_conv3x3(x, kernel, tiling, forward=forward)
  np.testing.assert_allclose(y, ig.reference_conv3x3(x, kernel), rtol=1e-5, atol=1e-5)
  ours = jax.grad(lambda x, k: jnp.sum(ig.implicit_gemm_conv3x3(x, k, tiling, forward=forward) * g), (0, 1))(x, kernel)
  ref = jax.grad(lambda x, k: jnp.sum(ig.reference_conv3x3(x, k) * g), (0, 1))(x, kernel)
  for a, b in zip(ours, ref):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_bf16_filter_gradient_is_at_least_as_close_to_f32_as_xlas():
  kx, kw, kg = jax.random.split(jax.random.key(1), 3)
  x = jax.random.normal(kx, (4, 9, 9, 24), jnp.bfloat16)
  kernel = (jax.random.normal(kw, (3, 3, 24, 16)) * 0.2).astype(jnp.bfloat16)
  g = jax.random.normal(kg, (4, 9, 9, 16), jnp.bfloat16)
  wgrad = lambda conv, dt: jax.vjp(lambda k: conv(x.astype(dt), k), kernel.astype(dt))[1](g.astype(dt))[0]
  exact = np.asarray(wgrad(ig.reference_conv3x3, jnp.float32))
  tiling = ig.Tiling(wgrad_block=32, wgrad_programs=2)
  ours = np.asarray(wgrad(lambda v, k: ig.implicit_gemm_conv3x3(v, k, tiling), jnp.bfloat16), np.float32)
  xla = np.asarray(wgrad(ig.reference_conv3x3, jnp.bfloat16), np.float32)
  assert ours.dtype == xla.dtype and ours.shape == exact.shape
  # f32 partial sums, one rounding at the end.
  assert np.abs(ours - exact).max() <= np.abs(xla - exact).max() + 1e-6


def test_bad_shapes_and_names_are_refused():
  x = jnp.zeros((1, 5, 5, 4))
  with pytest.raises(ValueError, match='power of two'):
    ig.implicit_gemm_conv3x3(x, jnp.zeros((3, 3, 4, 12)))
  with pytest.raises(ValueError, match=r'\(3, 3, C, F\)'):
    ig.implicit_gemm_conv3x3(x, jnp.zeros((5, 5, 4, 16)))
  with pytest.raises(ValueError, match='forward'):
    ig.implicit_gemm_conv3x3(x, jnp.zeros((3, 3, 4, 16)), forward='cudnn')


def test_without_the_kernels_every_part_is_xlas_convolution(monkeypatch):
  monkeypatch.setattr(pallas_support, 'kernels_available', lambda: False)  # as on a TPU
  x = jax.random.normal(jax.random.key(3), (2, 5, 5, 8))
  kernel = jax.random.normal(jax.random.key(4), (3, 3, 8, 16))
  fn = lambda x, k: jnp.sum(ig.implicit_gemm_conv3x3(x, k) ** 2)
  jaxpr = str(jax.make_jaxpr(jax.grad(fn, (0, 1)))(x, kernel))
  assert 'pallas_call' not in jaxpr and 'conv_general_dilated' in jaxpr
  ref = jax.grad(lambda x, k: jnp.sum(ig.reference_conv3x3(x, k) ** 2), (0, 1))(x, kernel)
  for a, b in zip(jax.grad(fn, (0, 1))(x, kernel), ref):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


# (images, height, width, channels, features, pixels per tile): odd sizes (the pool crops the last row
# and column), a tile that straddles images, and 3 programs per kernel row that do not divide the tiles.
POOL_SHAPES = [(3, 7, 7, 24, 64, 16), (2, 8, 7, 3, 16, 16), (2, 9, 6, 32, 32, 32)]


@pytest.mark.parametrize('grid', ['flat', 'rows'])
@pytest.mark.parametrize('shape', POOL_SHAPES)
def test_conv_with_fused_pool_backward_equals_conv_then_argmax_pool(shape, grid):
  from dawnjax.models.airbench import max_pool
  n, h, w, c, f, block = shape
  tiling = ig.Tiling(wgrad_block=block, wgrad_programs=3, wgrad_grid=grid)
  kx, kw, kg = jax.random.split(jax.random.key(5), 3)
  x = jax.random.normal(kx, (n, h, w, c))
  kernel = jax.random.normal(kw, (3, 3, c, f)) * 0.2
  g = jax.random.normal(kg, (n, h // 2, w // 2, f))
  unfused = lambda x, k: max_pool(ig.implicit_gemm_conv3x3(x, k, tiling, forward='xla'), 2, 'argmax')
  fused = lambda x, k: ig.implicit_gemm_conv3x3_max_pool(x, k, 2, tiling)
  np.testing.assert_array_equal(fused(x, kernel), unfused(x, kernel))
  ours = jax.grad(lambda x, k: jnp.sum(fused(x, k) * g), (0, 1))(x, kernel)
  ref = jax.grad(lambda x, k: jnp.sum(unfused(x, k) * g), (0, 1))(x, kernel)
  # The same kernel sums the same values (the expanded gradient's zeros included) in the same order.
  for a, b in zip(ours, ref):
    np.testing.assert_array_equal(a, b)
  exact = jax.grad(lambda k: jnp.sum(max_pool(ig.reference_conv3x3(x, k), 2, 'window') * g))(kernel)
  np.testing.assert_allclose(ours[1], exact, rtol=1e-4, atol=1e-4)  # no ties in random data


def test_fused_pool_without_the_kernels_is_xlas_convolution(monkeypatch):
  from dawnjax.models.airbench import max_pool
  monkeypatch.setattr(pallas_support, 'kernels_available', lambda: False)  # as on a TPU
  x = jax.random.normal(jax.random.key(6), (2, 7, 7, 8))
  kernel = jax.random.normal(jax.random.key(7), (3, 3, 8, 16))
  fn = lambda x, k: jnp.sum(ig.implicit_gemm_conv3x3_max_pool(x, k) ** 2)
  assert 'pallas_call' not in str(jax.make_jaxpr(jax.grad(fn, (0, 1)))(x, kernel))
  ref = jax.grad(lambda x, k: jnp.sum(max_pool(ig.reference_conv3x3(x, k), 2, 'argmax') ** 2), (0, 1))(x, kernel)
  for a, b in zip(jax.grad(fn, (0, 1))(x, kernel), ref):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('grid', ['flat', 'rows'])
@pytest.mark.parametrize('pooled', [False, True])
def test_the_filter_gradient_lowers_to_triton_for_gpus(monkeypatch, pooled, grid):
  # Lowering for CUDA needs no GPU; it catches what only the Triton path refuses.
  monkeypatch.setattr(pallas_support, 'on_gpu', lambda: True)
  x = jnp.zeros((8, 31, 31, 32), jnp.bfloat16)
  g = jnp.zeros((8, 15, 15, 64) if pooled else (8, 31, 31, 64), jnp.bfloat16)
  args = (x, g, jnp.zeros(g.shape, jnp.int8)) if pooled else (x, g)
  fn = jax.jit(lambda x, g, *first: ig._filter_grad(x, g, ig.Tiling(wgrad_grid=grid), *first))
  text = fn.trace(*args).lower(lowering_platforms=('cuda',)).as_text()
  assert '__gpu$xla.gpu.triton' in text and ('wgrad_pooled' in text) == pooled
