"""Max-pool implementations of the airbench net: same values; gradients equal except for ties."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dawnjax.models.airbench import max_pool


@pytest.mark.parametrize('shape,k', [((2, 31, 31, 5), 2), ((3, 7, 6, 4), 2), ((2, 3, 3, 8), 3), ((1, 8, 8, 2), 2)])
def test_argmax_pool_matches_window_pool_values_and_gradients(shape, k):
  x = jax.random.normal(jax.random.PRNGKey(0), shape)  # continuous: no ties
  g = jax.random.normal(jax.random.PRNGKey(1), max_pool(x, k, 'window').shape)
  for impl in ('reshape', 'argmax'):
    np.testing.assert_array_equal(max_pool(x, k, impl), max_pool(x, k, 'window'))
  grad = lambda impl: jax.grad(lambda v: jnp.sum(max_pool(v, k, impl) * g))(x)
  np.testing.assert_allclose(grad('argmax'), grad('window'), rtol=0, atol=0)
  np.testing.assert_allclose(grad('argmax'), grad('reshape'), rtol=0, atol=0)


def test_argmax_pool_sends_a_tied_window_gradient_to_its_first_maximum_only():
  x = jnp.zeros((1, 4, 4, 1)).at[0, 1, 1, 0].set(-1.0)  # every window has tied maxima (0)
  gx = jax.grad(lambda v: jnp.sum(max_pool(v, 2, 'argmax')))(x)
  want = np.zeros((1, 4, 4, 1))
  want[0, ::2, ::2, 0] = 1.0  # the top-left of each window is its first maximum
  np.testing.assert_array_equal(gx, want)
  # 'reshape' splits ties evenly; both preserve the total gradient.
  split = jax.grad(lambda v: jnp.sum(max_pool(v, 2, 'reshape')))(x)
  assert float(jnp.sum(split)) == float(jnp.sum(gx)) == 4.0


def test_argmax_pool_keeps_bfloat16_and_works_under_jit():
  x = jax.random.normal(jax.random.PRNGKey(2), (2, 15, 15, 3)).astype(jnp.bfloat16)
  f = jax.jit(jax.value_and_grad(lambda v: jnp.sum(max_pool(v, 2, 'argmax').astype(jnp.float32))))
  value, gx = f(x)
  assert gx.dtype == jnp.bfloat16 and gx.shape == x.shape
  assert float(jnp.sum(gx)) == 2 * 7 * 7 * 3  # one unit of gradient per window
  assert float(value) == pytest.approx(float(jnp.sum(max_pool(x, 2, 'window').astype(jnp.float32))))
