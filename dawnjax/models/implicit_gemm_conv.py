"""A 3x3 'SAME' convolution with few input channels as a Pallas (Triton) implicit GEMM.

Why: block1's first conv in the airbench nets reads the 24 whitened channels. cuDNN runs that
shape on Ampere-generation kernels at ~175 TFLOP/s on an H200: forward and filter gradient take
~0.23 ms each at batch 1536, where the 64-256 channel layers reach 360-720 TFLOP/s. Padding the
channels, or gathering the horizontal taps into 72 or 96 channels, did not reach the faster kernels
cheaply (kernels/cifar10_notes.md, eighth and ninth sessions).

How: each program takes a tile of consecutive output pixels of one image. For each of the 9 taps it
loads the shifted input rows (zero outside the image, channels masked up to a power of two) and
multiplies them with that tap's weights on the tensor cores.
- forward: y[n, p] = sum over taps t of x[n, p + shift(t)] @ w[t], f32 accumulation, stored in x's
  dtype;
- filter gradient: for each tap, the sum over all pixels of dy^T @ x_shifted, as per-program
  partial sums (f32) that XLA adds up: deterministic, no atomics;
- input gradient: XLA's transposed convolution (only needed while the layer below trains; XLA drops
  it otherwise).

Measured on an H200 at block1's shape (kernels/implicit_gemm_bench.py, results/cifar10_jpeg/h200_2026-12-01_s10):
- the filter gradient on 32 channels (8 of them zero) takes 0.167 ms, against cuDNN's 0.245 on 24 and
  0.290 on 32;
- the forward only matches cuDNN on 24 channels and loses on 32 (0.239 vs 0.150).
So airbench.PaddedIgemmConv uses the filter gradient with cuDNN's forward (forward='xla').

On CPU the kernels run in Pallas's interpreter (tests): same results, slowly. On TPUs, which have no
Triton backend, XLA's convolutions compute every part.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu
from jax.sharding import PartitionSpec as P

from dawnjax.models import pallas_support
from dawnjax.models.pooling import gradient_to_first_max, max_and_first_index, window_views
from dawnjax.parallel import DATA_AXIS


@dataclasses.dataclass(frozen=True)
class Tiling:
  """Launch parameters; the defaults are the measured best on an H200 (kernels/implicit_gemm_bench.py)."""
  fwd_block: int = 128  # output pixels per program
  fwd_warps: int = 4
  wgrad_block: int = 64  # pixels per loop step
  wgrad_warps: int = 4
  wgrad_stages: int = 3
  wgrad_programs: int = 132  # programs per kernel row; each sums a contiguous share of all pixel tiles
  # 'flat': a tile is wgrad_block consecutive pixels of one image (coordinates by division by the width);
  # 'rows': a tile is wgrad_block // W' whole rows, each padded to W' = the width's next power of two
  # (coordinates from the tile index and shifts; the padding is masked). The whitening kernel's row grid
  # was 35% faster than its flat grid (results/cifar10_jpeg/h200_2026-12-02_s12); not measured here.
  wgrad_grid: str = 'flat'


def _tap_rows(x_ref, n, row, col, valid, dy, dx, height, width, channels, cpad, p=None):
  """x[n] at the pixels (row, col) shifted by tap (dy, dx) in [0, 3)^2, as (len(row), cpad): zero where
  the shifted pixel leaves the image, where not valid, and in the padded channels. p: the pixels' flat
  index row * width + col, where the caller has it as an arange.

  The offsets stay affine in two aranges where p is given, and the channel mask is left out when there
  are no padded channels, so that Triton can prove 16-byte contiguity and vectorise the loads: an offset
  built through a division (a packed-taps variant) measured 2x slower (kernels/implicit_gemm_bench.py)."""
  src_row, src_col = row + dy - 1, col + dx - 1
  inside = valid & (src_row >= 0) & (src_row < height) & (src_col >= 0) & (src_col < width)
  c = jnp.arange(cpad)
  pixel = src_row * width + src_col if p is None else p + (dy - 1) * width + (dx - 1)
  offsets = pixel[:, None] * channels + c[None, :]
  mask = inside[:, None] if channels == cpad else inside[:, None] & (c < channels)[None, :]
  return plgpu.load(x_ref.at[n, offsets], mask=mask, other=0)


def _forward_kernel(x_ref, w_ref, y_ref, *, height, width, channels, features, block):
  n, tile = pl.program_id(0), pl.program_id(1)
  pixels = height * width
  p = tile * block + jnp.arange(block)
  cpad = w_ref.shape[1]
  acc = jnp.zeros((block, features), jnp.float32)
  for dy in range(3):
    for dx in range(3):
      rows = _tap_rows(x_ref, n, p // width, p % width, p < pixels, dy, dx, height, width, channels, cpad, p)
      acc += jnp.dot(rows, w_ref[dy * 3 + dx], preferred_element_type=jnp.float32)
  out = p[:, None] * features + jnp.arange(features)[None, :]
  plgpu.store(y_ref.at[n, out], acc.astype(y_ref.dtype), mask=(p < pixels)[:, None])


def _pooled_gradient_rows(gp_ref, first_ref, n, row, col, valid, pooled_height, pooled_width, features, pool):
  """dL/dy at the pixels (row, col) of image n, from the gradient of the k x k argmax max-pool that follows
  the conv (pool = k): the pooled gradient gp where the pixel is its window's first maximum (first, int8,
  == its position in the window) and zero elsewhere, in the floor-cropped last rows/columns and where not
  valid. pooling.gradient_to_first_max in registers: the full-size gradient is never written."""
  inside = valid & (row < pooled_height * pool) & (col < pooled_width * pool)
  offsets = ((row // pool) * pooled_width + col // pool)[:, None] * features + jnp.arange(features)[None, :]
  gp = plgpu.load(gp_ref.at[n, offsets], mask=inside[:, None], other=0)
  first = plgpu.load(first_ref.at[n, offsets], mask=inside[:, None], other=-1)
  position = ((row % pool) * pool + col % pool).astype(first.dtype)
  return jnp.where(first == position[:, None], gp, jnp.zeros((), gp.dtype))


def _tiles_per_image(height, width, block, grid):
  return pl.cdiv(height, block // pallas_support.pow2(width)) if grid == 'rows' else pl.cdiv(height * width, block)


def _wgrad_kernel(*refs, height, width, channels, features, block, images, tiles_per_program, pool, grid):
  # refs: x, the output gradient (dy; or the pooled gradient and its window indices when pool > 0), dw
  x_ref, g_refs, dw_ref = refs[0], refs[1:-1], refs[-1]
  dy, program = pl.program_id(0), pl.program_id(1)
  tiles_per_image = _tiles_per_image(height, width, block, grid)
  cpad = dw_ref.shape[-1]

  def step(i, accs):
    t = program * tiles_per_program + i
    n, tile = t // tiles_per_image, t % tiles_per_image
    local = jnp.arange(block)
    if grid == 'rows':
      wpad = pallas_support.pow2(width)
      row, col = tile * (block // wpad) + local // wpad, local % wpad
      valid, p = (row < height) & (col < width), None
    else:
      p = tile * block + local
      row, col, valid = p // width, p % width, p < height * width
    valid = valid & (n < images)  # the last program's share may run past the batch
    if pool:
      g = _pooled_gradient_rows(*g_refs, n, row, col, valid, height // pool, width // pool, features, pool)
    else:
      g_offsets = (row * width + col if p is None else p)[:, None] * features + jnp.arange(features)[None, :]
      g = plgpu.load(g_refs[0].at[n, g_offsets], mask=valid[:, None], other=0)
    return tuple(acc + jnp.dot(g.T, _tap_rows(x_ref, n, row, col, valid, dy, dx, height, width, channels, cpad, p),
                               preferred_element_type=jnp.float32)
                 for dx, acc in enumerate(accs))

  zeros = jnp.zeros((features, cpad), jnp.float32)
  accs = jax.lax.fori_loop(0, tiles_per_program, step, (zeros, zeros, zeros))
  for dx, acc in enumerate(accs):
    dw_ref[dy, program, dx] = acc


def _check(x, w):
  if x.ndim != 4 or w.shape[:2] != (3, 3) or w.shape[2] != x.shape[-1]:
    raise ValueError(f'implicit_gemm_conv3x3: x {x.shape} (NHWC) and w {w.shape} (3, 3, C, F) expected')
  if pallas_support.pow2(w.shape[3]) != w.shape[3]:
    raise ValueError(f'implicit_gemm_conv3x3: output features {w.shape[3]} must be a power of two')


def _conv_flops(x, features):
  return 2 * math.prod(x.shape) * features * 9


def _cpad(channels):
  return max(16, pallas_support.pow2(channels))  # tensor-core dots want K >= 16


def _forward(x, w, tiling: Tiling):
  images, height, width, channels = x.shape
  features = w.shape[-1]
  cpad = _cpad(channels)
  taps = jnp.pad(w.reshape(9, channels, features), ((0, 0), (0, cpad - channels), (0, 0))).astype(x.dtype)
  block = tiling.fwd_block
  kernel = functools.partial(_forward_kernel, height=height, width=width, channels=channels,
                             features=features, block=block)
  y = pl.pallas_call(
      kernel, grid=(images, pl.cdiv(height * width, block)),
      out_shape=jax.ShapeDtypeStruct((images, height * width * features), x.dtype),
      compiler_params=plgpu.CompilerParams(num_warps=tiling.fwd_warps, num_stages=1),
      cost_estimate=pl.CostEstimate(
          flops=_conv_flops(x, features), transcendentals=0,
          bytes_accessed=(x.size + images * height * width * features) * x.dtype.itemsize),
      interpret=not pallas_support.on_gpu(), name='implicit_gemm_conv3x3_fwd',
  )(x.reshape(images, -1), taps)
  return y.reshape(images, height, width, features)


def _filter_grad(x, g, tiling: Tiling, first=None):
  """dL/dw from x and the output gradient g; or, with `first`, from the gradient g of the argmax max-pool
  that follows the conv and its window indices (both at the pooled size)."""
  images, height, width, channels = x.shape
  features = g.shape[-1]
  pool = height // g.shape[1] if first is not None else 0
  cpad, block = _cpad(channels), tiling.wgrad_block
  if tiling.wgrad_grid == 'rows':
    block = max(block, pallas_support.pow2(width))  # whole padded rows
  tiles = images * _tiles_per_image(height, width, block, tiling.wgrad_grid)
  programs = min(tiling.wgrad_programs, tiles)
  per_program = pl.cdiv(tiles, programs)
  programs = pl.cdiv(tiles, per_program)
  kernel = functools.partial(_wgrad_kernel, height=height, width=width, channels=channels, features=features,
                             block=block, images=images, tiles_per_program=per_program, pool=pool,
                             grid=tiling.wgrad_grid)
  gradients = (g,) if first is None else (g, first)
  partial_sums = pl.pallas_call(
      kernel, grid=(3, programs),
      out_shape=jax.ShapeDtypeStruct((3, programs, 3, features, cpad), jnp.float32),
      compiler_params=plgpu.CompilerParams(num_warps=tiling.wgrad_warps, num_stages=tiling.wgrad_stages),
      cost_estimate=pl.CostEstimate(
          flops=_conv_flops(x, features), transcendentals=0,
          bytes_accessed=3 * (x.size * x.dtype.itemsize + sum(a.size * a.dtype.itemsize for a in gradients))),
      interpret=not pallas_support.on_gpu(),
      name='implicit_gemm_conv3x3_wgrad' + ('_pooled' if pool else ''),
  )(x.reshape(images, -1), *(a.reshape(images, -1) for a in gradients))
  dw = partial_sums.sum(axis=1)  # (3, 3, F, cpad)
  return jnp.transpose(dw, (0, 1, 3, 2))[:, :, :channels, :]


def reference_conv3x3(x, w):
  """What implicit_gemm_conv3x3 computes, as XLA's convolution (f32 accumulation, x's dtype out)."""
  return jax.lax.conv_general_dilated(x, w.astype(x.dtype), (1, 1), 'SAME',
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


FORWARDS = ('pallas', 'xla')


def _forward_fn(forward: str, tiling: Tiling, mesh):
  """forward(x, w): the Pallas kernel (per batch shard on a mesh), or XLA's convolution for 'xla' and
  where the kernels cannot run."""
  if forward == 'pallas' and pallas_support.kernels_available():
    return pallas_support.per_batch_shard(functools.partial(_forward, tiling=tiling), mesh, (P(DATA_AXIS), P()),
                                          summed=False)
  return reference_conv3x3


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv(x, w, tiling, forward, mesh):
  return _forward_fn(forward, tiling, mesh)(x, w)


def _conv_fwd(x, w, tiling, forward, mesh):
  return _forward_fn(forward, tiling, mesh)(x, w), (x, w)


def _conv_grads(x, w, full, mesh, kernel_filter_grad, *gradients):
  """(dx, dw) of the conv. dx is XLA's, from the full-size output gradient (only needed while the layer
  below trains; XLA drops it otherwise). dw is kernel_filter_grad(x, *gradients), a Pallas kernel run per
  batch shard on a mesh; where the kernels cannot run, XLA's from the full-size gradient."""
  (dx,) = jax.vjp(lambda v: reference_conv3x3(v, w), x)[1](full)
  if not pallas_support.kernels_available():
    return dx, jax.vjp(lambda k: reference_conv3x3(x, k), w)[1](full)[0]
  filter_grad = pallas_support.per_batch_shard(kernel_filter_grad, mesh, (P(DATA_AXIS),) * (1 + len(gradients)),
                                               summed=True)
  return dx, filter_grad(x, *gradients).astype(w.dtype)


def _conv_bwd(tiling, forward, mesh, residuals, g):
  x, w = residuals
  return _conv_grads(x, w, g, mesh, functools.partial(_filter_grad, tiling=tiling), g)


_conv.defvjp(_conv_fwd, _conv_bwd)


def implicit_gemm_conv3x3(x: jax.Array, w: jax.Array, tiling: Tiling = Tiling(), *, forward: str = 'pallas',
                          mesh=None) -> jax.Array:
  """3x3 'SAME' convolution, stride 1, NHWC x (N, H, W, C) and HWIO w (3, 3, C, F), in x's dtype;
  C <= 128 (padded to a power of two >= 16 inside), F a power of two. Differentiable in x and w:
  the filter gradient is the Pallas kernel's, the input gradient XLA's. On backends without the
  kernels (TPU) every part is XLA's convolution.

  forward='xla' keeps XLA's (cuDNN's) forward: on an H200 at block1's shape the Pallas forward only
  matches cuDNN on 24 channels and loses to it on 32, where cuDNN's filter gradient is the slow part
  (kernels/implicit_gemm_bench.py).

  mesh: the data-parallel mesh (dawnjax.parallel, batch on its 'data' axis) when x is batch-sharded
  over more than one device; each device then runs the kernels on its own shard."""
  _check(x, w)
  if forward not in FORWARDS:
    raise ValueError(f'implicit_gemm_conv3x3: forward={forward!r}: expected one of {FORWARDS}')
  return _conv(x, w.astype(x.dtype), tiling, forward, mesh)


def _conv_pool_forward(x, w, pool):
  views = window_views(reference_conv3x3(x, w), pool)
  return max_and_first_index(views)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv_pool(x, w, pool, tiling, mesh):
  return _conv_pool_forward(x, w, pool)[0]


def _conv_pool_fwd(x, w, pool, tiling, mesh):
  pooled, first = _conv_pool_forward(x, w, pool)
  return pooled, (x, w, first)


def _conv_pool_bwd(pool, tiling, mesh, residuals, g):
  x, w, first = residuals
  # The input gradient needs the full-size output gradient; the Pallas filter gradient reads the pooled one.
  full = gradient_to_first_max(g, first, pool, x.shape[1] % pool, x.shape[2] % pool)
  return _conv_grads(x, w, full, mesh, lambda x, g, first: _filter_grad(x, g, tiling, first=first), g, first)


_conv_pool.defvjp(_conv_pool_fwd, _conv_pool_bwd)


def implicit_gemm_conv3x3_max_pool(x: jax.Array, w: jax.Array, pool: int = 2, tiling: Tiling = Tiling(), *,
                                   mesh=None) -> jax.Array:
  """The non-overlapping pool x pool argmax max-pool (floor) of the 3x3 'SAME' conv of x with w: the
  values and gradients of implicit_gemm_conv3x3(x, w, forward='xla') followed by airbench's
  max_pool(impl='argmax') (the gradient goes to each window's first maximum).

  The forward is XLA's (cuDNN's) convolution and the pool's max. The filter gradient is the Pallas
  kernel reading the pooled gradient and the pool's int8 window indices: it expands them to the
  conv's output size in registers, so the full-size output gradient (at block1's shape 189 MB,
  written by one pass and read by each of the kernel's three row programs) is never written. The input
  gradient is XLA's, from the expanded gradient.

  Why it was tried: on an H200 at batch 1536 the pool's backward pass took 0.114 ms per step and the filter
  gradient that read its output 0.158 ms (results/cifar10_jpeg/h200_2026-12-02_s11, profile_whiten_pallas.md).
  Measured, it is slower (results/cifar10_jpeg/h200_2026-12-02_s12): alone 0.35-0.49 ms against 0.28-0.33 ms
  for the pool backward + filter gradient over 12 tilings, +1.7% and +1.9% timed for fast.flags. Kept as the
  recorded alternative (--block1_conv1_impl=padded_igemm_pool), off by default."""
  _check(x, w)
  return _conv_pool(x, w.astype(x.dtype), pool, tiling, mesh)
