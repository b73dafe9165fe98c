"""On-device image augmentation for uint8 NHWC batches: pure functions, fused by XLA into the step.

Randomness comes in as explicit arrays (flip bits, shifts, cutout corners, jitter) drawn by the caller, so
each function is deterministic and testable, and the data order is reproducible from the seed.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def normalize(images_u8: jax.Array, mean=CIFAR10_MEAN, std=CIFAR10_STD, dtype=jnp.bfloat16) -> jax.Array:
  """uint8 [0, 255] -> (x/255 - mean)/std in `dtype`; the arithmetic stays fp32 until the cast."""
  mean = jnp.asarray(mean, jnp.float32) * 255.0
  inv_std = 1.0 / (jnp.asarray(std, jnp.float32) * 255.0)
  return ((images_u8.astype(jnp.float32) - mean) * inv_std).astype(dtype)


def flip_lr(images: jax.Array, flip: jax.Array) -> jax.Array:
  """Mirrors image i left-right where flip[i] is true (exact: a pure permutation of pixels)."""
  return jnp.where(flip[:, None, None, None], images[:, :, ::-1, :], images)


def alternating_flip(base_flip: jax.Array, epoch: jax.Array) -> jax.Array:
  """airbench's scheme: a random flip per image, inverted on every odd epoch.

  Every image is seen both ways within two epochs, which beats independent coin flips at a
  10-epoch budget.
  """
  return jnp.logical_xor(base_flip, (epoch % 2) == 1)


def translate(images: jax.Array, shifts: jax.Array, pad: int) -> jax.Array:
  """Shifts image i by shifts[i] = (dy, dx) in [-pad, pad], filling with reflected pixels.

  Equivalent to a random crop of the reflect-padded image, as airbench does.
  """
  if pad == 0:
    return images
  _, h, w, _ = images.shape
  padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='reflect')

  def crop(img, s):
    return jax.lax.dynamic_slice(img, (s[0] + pad, s[1] + pad, 0), (h, w, img.shape[-1]))

  return jax.vmap(crop)(padded, shifts)


def cutout(images: jax.Array, corners: jax.Array, size: int) -> jax.Array:
  """Zeroes a size x size square at corners[i] = (y, x) (may run past the edge and be clipped).

  Apply after normalisation so that zero is the dataset mean.
  """
  if size == 0:
    return images
  _, h, w, _ = images.shape
  ys = jnp.arange(h)[None, :, None]
  xs = jnp.arange(w)[None, None, :]
  y0 = corners[:, 0, None, None]
  x0 = corners[:, 1, None, None]
  inside = (ys >= y0) & (ys < y0 + size) & (xs >= x0) & (xs < x0 + size)
  return jnp.where(inside[..., None], jnp.zeros((), images.dtype), images)


def color_jitter(images: jax.Array, jitter: jax.Array, brightness: float, contrast: float) -> jax.Array:
  """hiverge cifar10-speedrun's colour jitter on normalised images, jitter[i] = (u, v) in [-1, 1]:
  x_i <- (x_i + u * brightness) * (1 + v * contrast), one shift and one gain per image over all
  pixels and channels. Arithmetic in fp32, the result in the images' dtype.
  """
  shift = (jitter[:, 0] * brightness)[:, None, None, None]
  gain = (1.0 + jitter[:, 1] * contrast)[:, None, None, None]
  return ((images.astype(jnp.float32) + shift) * gain).astype(images.dtype)


def random_jitter(key: jax.Array, n: int) -> jax.Array:
  """(n, 2) uniform in [-1, 1): per-image brightness and contrast draws for `color_jitter`."""
  return jax.random.uniform(key, (n, 2), jnp.float32, -1.0, 1.0)


def random_shifts(key: jax.Array, n: int, pad: int) -> jax.Array:
  return jax.random.randint(key, (n, 2), -pad, pad + 1)


def random_cutout_corners(key: jax.Array, n: int, h: int, w: int, size: int) -> jax.Array:
  # Corners range so the square's centre is uniform over the image, as in DeVries & Taylor.
  lo = -(size // 2)
  ky, kx = jax.random.split(key)
  return jnp.stack([jax.random.randint(ky, (n,), lo, h + lo), jax.random.randint(kx, (n,), lo, w + lo)], -1)
