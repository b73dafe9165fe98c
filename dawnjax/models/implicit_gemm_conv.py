"""A 3x3 'SAME' convolution with few input channels as a Pallas (Triton) implicit GEMM.

Why: block1's first conv in the airbench nets reads the 24 whitened channels. cuDNN runs that
shape on Ampere-generation kernels at ~175 TFLOP/s on an H200 (forward and filter gradient
~0.23 ms each at batch 1536), where the 64-256 channel layers reach 360-720 TFLOP/s; padding the
channels, or gathering the horizontal taps into 72 or 96 channels, did not reach the faster kernels
cheaply (kernels/cifar10_notes.md, eighth and ninth sessions). These kernels read the 24-channel
layout directly: each program takes a tile of consecutive output pixels of one image, and for each
of the 9 taps loads the shifted input rows (zero outside the image, channels masked up to a power
of two) and multiplies them with that tap's weights on the tensor cores.

- forward: y[n, p] = sum over taps t of x[n, p + shift(t)] @ w[t], f32 accumulation, stored in x's
  dtype;
- filter gradient: for each tap, the sum over all pixels of dy^T @ x_shifted, as per-program
  partial sums (f32) that XLA adds up: deterministic, no atomics;
- input gradient: XLA's transposed convolution (only needed while the layer below trains; XLA drops
  it otherwise).

Off GPU the kernels run in Pallas's interpreter (tests, CPU runs): same results, slowly.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu


@dataclasses.dataclass(frozen=True)
class Tiling:
  """Launch parameters; the defaults are the measured best on an H200 (kernels/implicit_gemm_bench.py).

  `*_slots`: taps per dot. 1 = nine dots with K = C padded to a power of two (>= 16); 4 = three dots,
  one per kernel row, with the row's three horizontal taps side by side in K (4 slots, the last zero)."""
  block_pixels: int = 128  # output pixels per program (forward) and per loop step (filter gradient)
  fwd_warps: int = 4
  fwd_slots: int = 1
  wgrad_warps: int = 4
  wgrad_stages: int = 3
  wgrad_programs: int = 132  # programs per kernel row; each sums a contiguous share of all pixel tiles
  wgrad_slots: int = 1


def _pow2(n: int) -> int:
  return 1 << max(0, (n - 1).bit_length())


def _on_gpu() -> bool:
  return jax.default_backend() == 'gpu'


def _slab(x_ref, n, p, dy, dx0, slots, height, width, channels, cpad, limit):
  """(len(p), slots * cpad): column s * cpad + c holds channel c of x[n] at pixel p shifted by tap
  (dy, dx0 + s), taps in [0, 3)^2 centred on (1, 1). Zero where the shifted pixel leaves the image,
  where p >= limit, in the padded channels and in slots past the kernel's last column."""
  k = jnp.arange(slots * cpad)
  dx, c = dx0 + k // cpad, k % cpad
  row, col = p // width, p % width
  src_row = row + dy - 1
  src_col = col[:, None] + dx[None, :] - 1
  inside = (((p < limit) & (src_row >= 0) & (src_row < height))[:, None]
            & (src_col >= 0) & (src_col < width) & ((dx < 3) & (c < channels))[None, :])
  offsets = (p[:, None] + (dy - 1) * width + dx[None, :] - 1) * channels + c[None, :]
  return plgpu.load(x_ref.at[n, offsets], mask=inside, other=0)


def _slab_starts(slots):
  return range(0, 3, slots)  # dx0 of each dot in a kernel row


def _forward_kernel(x_ref, w_ref, y_ref, *, height, width, channels, features, block, slots):
  n, tile = pl.program_id(0), pl.program_id(1)
  pixels = height * width
  p = tile * block + jnp.arange(block)
  cpad = w_ref.shape[1] // slots
  acc = jnp.zeros((block, features), jnp.float32)
  j = 0
  for dy in range(3):
    for dx0 in _slab_starts(slots):
      rows = _slab(x_ref, n, p, dy, dx0, slots, height, width, channels, cpad, pixels)
      acc += jnp.dot(rows, w_ref[j], preferred_element_type=jnp.float32)
      j += 1
  out = p[:, None] * features + jnp.arange(features)[None, :]
  plgpu.store(y_ref.at[n, out], acc.astype(y_ref.dtype), mask=(p < pixels)[:, None])


def _wgrad_kernel(x_ref, g_ref, dw_ref, *, height, width, channels, features, block, images,
                  tiles_per_program, slots):
  dy, program = pl.program_id(0), pl.program_id(1)
  pixels = height * width
  tiles_per_image = pl.cdiv(pixels, block)
  cpad = dw_ref.shape[-1] // slots
  starts = _slab_starts(slots)

  def step(i, accs):
    t = program * tiles_per_program + i
    n, tile = t // tiles_per_image, t % tiles_per_image
    p = tile * block + jnp.arange(block)
    limit = pixels * (n < images).astype(jnp.int32)  # the last program's share may run past the batch
    g_offsets = p[:, None] * features + jnp.arange(features)[None, :]
    g = plgpu.load(g_ref.at[n, g_offsets], mask=(p < limit)[:, None], other=0)
    return tuple(acc + jnp.dot(g.T, _slab(x_ref, n, p, dy, dx0, slots, height, width, channels, cpad, limit),
                               preferred_element_type=jnp.float32)
                 for dx0, acc in zip(starts, accs))

  zeros = jnp.zeros((features, slots * cpad), jnp.float32)
  accs = jax.lax.fori_loop(0, tiles_per_program, step, tuple(zeros for _ in starts))
  for j, acc in enumerate(accs):
    dw_ref[dy, program, j] = acc


def _check(x, w):
  if x.ndim != 4 or w.shape[:2] != (3, 3) or w.shape[2] != x.shape[-1]:
    raise ValueError(f'implicit_gemm_conv3x3: x {x.shape} (NHWC) and w {w.shape} (3, 3, C, F) expected')
  if _pow2(w.shape[3]) != w.shape[3]:
    raise ValueError(f'implicit_gemm_conv3x3: output features {w.shape[3]} must be a power of two')


def _conv_flops(x, features):
  return 2 * math.prod(x.shape) * features * 9


def _cpad(channels):
  return max(16, _pow2(channels))  # tensor-core dots want K >= 16


def _packed_weights(w, slots, dtype):
  """(3 * len(starts), slots * cpad, F): the kernel rows' taps in the order the kernels walk them."""
  channels, features = w.shape[2:]
  cpad = _cpad(channels)
  w = jnp.pad(w, ((0, 0), (0, len(_slab_starts(slots)) * slots - 3), (0, cpad - channels), (0, 0)))
  return w.reshape(-1, slots * cpad, features).astype(dtype)


def _forward(x, w, tiling: Tiling):
  images, height, width, channels = x.shape
  features = w.shape[-1]
  block, slots = tiling.block_pixels, tiling.fwd_slots
  kernel = functools.partial(_forward_kernel, height=height, width=width, channels=channels, features=features,
                             block=block, slots=slots)
  y = pl.pallas_call(
      kernel, grid=(images, pl.cdiv(height * width, block)),
      out_shape=jax.ShapeDtypeStruct((images, height * width * features), x.dtype),
      compiler_params=plgpu.CompilerParams(num_warps=tiling.fwd_warps, num_stages=1),
      cost_estimate=pl.CostEstimate(
          flops=_conv_flops(x, features), transcendentals=0,
          bytes_accessed=(x.size + images * height * width * features) * x.dtype.itemsize),
      interpret=not _on_gpu(), name='implicit_gemm_conv3x3_fwd',
  )(x.reshape(images, -1), _packed_weights(w, slots, x.dtype))
  return y.reshape(images, height, width, features)


def _filter_grad(x, g, tiling: Tiling):
  images, height, width, channels = x.shape
  features = g.shape[-1]
  cpad, block, slots = _cpad(channels), tiling.block_pixels, tiling.wgrad_slots
  tiles = images * pl.cdiv(height * width, block)
  programs = min(tiling.wgrad_programs, tiles)
  per_program = pl.cdiv(tiles, programs)
  programs = pl.cdiv(tiles, per_program)
  dots = len(_slab_starts(slots))
  kernel = functools.partial(_wgrad_kernel, height=height, width=width, channels=channels, features=features,
                             block=block, images=images, tiles_per_program=per_program, slots=slots)
  partial_sums = pl.pallas_call(
      kernel, grid=(3, programs),
      out_shape=jax.ShapeDtypeStruct((3, programs, dots, features, slots * cpad), jnp.float32),
      compiler_params=plgpu.CompilerParams(num_warps=tiling.wgrad_warps, num_stages=tiling.wgrad_stages),
      cost_estimate=pl.CostEstimate(
          flops=_conv_flops(x, features), transcendentals=0,
          bytes_accessed=(3 * x.size + 3 * g.size) * x.dtype.itemsize),
      interpret=not _on_gpu(), name='implicit_gemm_conv3x3_wgrad',
  )(x.reshape(images, -1), g.reshape(images, -1))
  dw = partial_sums.sum(axis=1).reshape(3, dots, features, slots, cpad)
  dw = jnp.transpose(dw, (0, 1, 3, 4, 2)).reshape(3, dots * slots, cpad, features)
  return dw[:, :3, :channels, :]


def reference_conv3x3(x, w):
  """What implicit_gemm_conv3x3 computes, as XLA's convolution (f32 accumulation, x's dtype out)."""
  return jax.lax.conv_general_dilated(x, w.astype(x.dtype), (1, 1), 'SAME',
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv(x, w, tiling):
  return _forward(x, w, tiling)


def _conv_fwd(x, w, tiling):
  return _forward(x, w, tiling), (x, w)


def _conv_bwd(tiling, residuals, g):
  x, w = residuals
  _, input_vjp = jax.vjp(lambda v: reference_conv3x3(v, w), x)
  (dx,) = input_vjp(g)
  return dx, _filter_grad(x, g, tiling).astype(w.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)


def implicit_gemm_conv3x3(x: jax.Array, w: jax.Array, tiling: Tiling = Tiling()) -> jax.Array:
  """3x3 'SAME' convolution, stride 1, NHWC x (N, H, W, C) and HWIO w (3, 3, C, F) of x's dtype;
  C <= 128 (padded to a power of two >= 16 inside), F a power of two. Differentiable in x and w."""
  _check(x, w)
  return _conv(x, w.astype(x.dtype), tiling)
