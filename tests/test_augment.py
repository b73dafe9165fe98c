"""Properties of the on-device augmentations (exactness, content preservation, areas)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dawnjax import augment
from dawnjax.models.airbench import whitening_kernel


@pytest.fixture
def images():
  return jnp.asarray(np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3)), jnp.uint8)


def test_flip_is_exact_mirror_and_involution(images):
  flip = jnp.array([True, False, True, False, True, False])
  out = augment.flip_lr(images, flip)
  np.testing.assert_array_equal(out[0], np.asarray(images[0])[:, ::-1])
  np.testing.assert_array_equal(out[1], images[1])
  np.testing.assert_array_equal(augment.flip_lr(out, flip), images)


def test_alternating_flip_inverts_on_odd_epochs():
  base = jnp.array([True, False, False, True])
  np.testing.assert_array_equal(augment.alternating_flip(base, 0), base)
  np.testing.assert_array_equal(augment.alternating_flip(base, 1), ~base)
  np.testing.assert_array_equal(augment.alternating_flip(base, 4), base)


@pytest.mark.parametrize('dy,dx', [(0, 0), (2, -1), (-2, 2), (1, 1)])
def test_translate_keeps_content(images, dy, dx):
  shifts = jnp.tile(jnp.array([[dy, dx]]), (images.shape[0], 1))
  out = np.asarray(augment.translate(images, shifts, pad=2))
  src = np.asarray(images)
  h, w = src.shape[1:3]
  # Output pixel (y, x) shows source pixel (y + dy, x + dx) wherever that lies inside the image.
  ys = slice(max(0, -dy), min(h, h - dy))
  xs = slice(max(0, -dx), min(w, w - dx))
  np.testing.assert_array_equal(out[:, ys, xs], src[:, ys.start + dy:ys.stop + dy, xs.start + dx:xs.stop + dx])
  if dy == dx == 0:
    np.testing.assert_array_equal(out, src)
  # The border is filled by reflection, not zeros: row 0 shifted up by 2 shows source row 2.
  if dy == -2:
    np.testing.assert_array_equal(out[:, 0, xs], src[:, 2, xs.start + dx:xs.stop + dx])


def test_translate_shifts_vary_per_image(images):
  shifts = augment.random_shifts(jax.random.PRNGKey(0), 1000, 2)
  assert int(shifts.min()) == -2 and int(shifts.max()) == 2
  counts = np.bincount(np.asarray(shifts[:, 0]) + 2, minlength=5)
  assert counts.min() > 150  # roughly uniform over the 5 offsets


def test_cutout_area_and_clipping():
  x = jnp.ones((3, 10, 10, 3), jnp.float32)
  corners = jnp.array([[2, 3], [-2, -2], [8, 9]])
  out = np.asarray(augment.cutout(x, corners, 4))
  zeros = (out[..., 0] == 0).sum(axis=(1, 2))
  np.testing.assert_array_equal(zeros, [16, 4, 2])  # inside; clipped at top-left; clipped at bottom-right
  assert (out[0, 2:6, 3:7] == 0).all() and (out[0, 1, 3] == 1).all()


def test_normalize_matches_formula(images):
  out = np.asarray(augment.normalize(images, dtype=jnp.float32))
  ref = (np.asarray(images, np.float64) / 255 - np.array(augment.CIFAR10_MEAN)) / np.array(augment.CIFAR10_STD)
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_color_jitter_matches_numpy(images):
  x = augment.normalize(images, dtype=jnp.float32)
  jitter = augment.random_jitter(jax.random.PRNGKey(3), x.shape[0])
  out = np.asarray(augment.color_jitter(x, jitter, 0.1399, 0.1308))
  u, v = np.asarray(jitter, np.float64).T
  ref = (np.asarray(x, np.float64) + u[:, None, None, None] * 0.1399) * (1 + v[:, None, None, None] * 0.1308)
  np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
  # bf16 in, bf16 out (the arithmetic is fp32 inside); zero ranges are the identity.
  assert augment.color_jitter(x.astype(jnp.bfloat16), jitter, 0.1, 0.1).dtype == jnp.bfloat16
  np.testing.assert_array_equal(augment.color_jitter(x, jitter, 0.0, 0.0), x)


def test_random_jitter_is_uniform_per_image():
  jitter = np.asarray(augment.random_jitter(jax.random.PRNGKey(0), 4000))
  assert jitter.shape == (4000, 2) and jitter.min() >= -1.0 and jitter.max() < 1.0
  np.testing.assert_allclose(jitter.mean(0), 0.0, atol=0.05)
  np.testing.assert_allclose(jitter.var(0), 1 / 3, atol=0.02)  # U(-1, 1)
  assert abs(np.corrcoef(jitter.T)[0, 1]) < 0.05  # brightness and contrast drawn independently


def test_whitening_kernel_whitens_patches():
  rng = np.random.default_rng(1)
  # Correlated channels so whitening has work to do.
  base = rng.normal(size=(64, 12, 12, 1))
  x = jnp.asarray(np.concatenate([base, base + 0.1 * rng.normal(size=base.shape), rng.normal(size=base.shape)], -1),
                  jnp.float32)
  kernel = whitening_kernel(x, 2, eps=0.0)
  assert kernel.shape == (2, 2, 3, 24)
  out = jax.lax.conv_general_dilated(x, kernel[..., :12], (1, 1), 'VALID',
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  flat = np.asarray(out).reshape(-1, 12)
  cov = flat.T @ flat / flat.shape[0]
  np.testing.assert_allclose(cov, np.eye(12), atol=1e-3)
  np.testing.assert_array_equal(kernel[..., 12:], -kernel[..., :12])
