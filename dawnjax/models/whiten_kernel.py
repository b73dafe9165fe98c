"""The airbench whitening layer and its GELU as one Pallas (Triton) kernel: a k x k 'VALID' conv on
the few image channels, plus bias, then GELU, written once in bf16.

Why: the layer does k*k*C = 12 multiply-adds per output, so it is a pass that writes its output
(31x31x32 per image at batch 1536: ~94 MB) and little else. XLA's best form (the sums as fused
multiply-adds, models/airbench.PatchWhiten) took 0.233 ms per step on an H200 for what the H200's
bandwidth moves in ~0.03 ms: each output element loads its 12 inputs and 12 weights, and XLA first
writes the 12 shifted input planes in f32 (results/cifar10_jpeg/h200_2026-12-01_s10). The same sums
as a cuBLAS GEMM of the patches took as long (h200_2026-12-02_s11).

How: each program takes a tile of output pixels: by default (GRID = 'rows') 4 output rows of one image,
each padded to 32 pixels (the padding masked); or consecutive pixels of the flattened batch. It gathers
their k*k*C patch values once (one (tile, 16) load, the taps padded to 16 for the tensor cores),
multiplies them by the (16, F) kernel on the tensor cores with f32 accumulation, adds the bias,
rounds to the output dtype as PatchWhiten does, applies GELU in f32 and stores the tile's F channels
of consecutive pixels: one contiguous write.

The backward is XLA's (the reference below): only the bias trains, for the recipe's first few
steps; after that the frozen layer is pruned from the gradient and the backward never runs.

Measured on an H200 (results/cifar10_jpeg/h200_2026-12-02_s11): 0.105 ms per training step in place
of XLA's 0.253 ms, -3.4% and -3.7% timed for fast.flags. That is ~1 TB/s, a quarter of the memory's
bandwidth; the 'fma' form and the launch shapes tried alone all took 0.10-0.12 ms.

Taken apart (kernels/whiten_kernel_probe.py, results/cifar10_jpeg/h200_2026-12-02_s12), the grid's index
arithmetic alone took ~0.05 ms (a flat tile of the batch's pixels needs divisions by the image's output size and
width per pixel) and the GELU ~0.05 ms. The row-block grid (GRID) takes the coordinates from program ids and
shifts: alone 0.075 ms instead of 0.118, with the same values; with the tanh through tanh.approx.f32
(fast_tanh) 0.052 ms.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu
from jax.sharding import PartitionSpec as P

from dawnjax.models import pallas_support
from dawnjax.parallel import DATA_AXIS

_TAPS_PAD = 16  # tensor-core dots want K >= 16
# Launch parameters: output pixels per program, warps per program, how the sums are formed ('dot':
# the (pixels, 16) patches times the (16, F) kernel on the tensor cores; 'fma': one multiply-add per
# tap), and the grid ('flat': tiles of consecutive pixels of the flattened batch, whose coordinates
# take divisions by the image's output size and width; 'rows': one program per image and block of
# output rows, the row padded to a power of two, coordinates from program ids and shifts).
# kernels/conv_shapes_bench.py --whiten_only and kernels/whiten_kernel_probe.py time them.
BLOCK = 128
WARPS = 4
FORM = 'dot'
GRID = 'rows'
GRIDS = ('flat', 'rows')


def patch_conv_sums(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
  """The k x k 'VALID' conv of x (N, H, W, C) with kernel (k, k, C, F) plus bias (F,), as f32 sums of
  k*k*C multiply-adds of shifted slices of x (widened to f32 where used). Written this way, XLA
  fuses the sums with what follows into one loop fusion, and no dot_general goes to cuBLAS."""
  k, _, channels, _ = kernel.shape
  h, w = x.shape[1] - k + 1, x.shape[2] - k + 1
  kernel = kernel.astype(jnp.float32)
  out = bias.astype(jnp.float32)
  for i in range(k):
    for j in range(k):
      for c in range(channels):
        out = out + x[:, i:i + h, j:j + w, c:c + 1].astype(jnp.float32) * kernel[i, j, c]
  return out


def whiten_gelu_reference(x, kernel, bias, approximate: bool):
  """What whiten_gelu computes, in XLA: PatchWhiten's sums rounded to x's dtype, then GELU."""
  return jax.nn.gelu(patch_conv_sums(x, kernel, bias).astype(x.dtype), approximate=approximate)


def _erf(x):
  # Pallas's Triton lowering has neither erf nor erfc. Abramowitz & Stegun 7.1.26: absolute error
  # <= 1.5e-7, far below the bf16 rounding of the output.
  a = jnp.abs(x)
  t = 1 / (1 + 0.3275911 * a)
  poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
  y = 1 - poly * jnp.exp(-a * a)
  return jnp.where(x < 0, -y, y)


def _gelu(x, approximate: bool, fast_tanh: bool = False):
  if approximate and fast_tanh:
    # The GPU's tanh.approx.f32 (one instruction; relative error ~2^-11): a fraction of a bf16 step
    # (2^-8) where the output is not small; for large negative x, where the output is ~0, its error
    # is small in absolute terms but not relative to that output.
    return 0.5 * x * (1 + plgpu.approx_tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
  if approximate:
    # The tanh form as x * sigmoid(2z): 0.5 * (1 + tanh(z)) = 1 / (1 + exp(-2z)). The same function
    # (f32 rounding apart), with one exp instead of libdevice's tanh.
    return x / (1 + jnp.exp(-1.5957691216057308 * (x + 0.044715 * x * x * x)))
  return 0.5 * x * (1 + _erf(x * 0.7071067811865476))


def _kernel(x_ref, w_ref, b_ref, y_ref, *, height, width, channels, k, features, total, approximate, block, form,
            grid, fast_tanh):
  out_h, out_w = height - k + 1, width - k + 1
  if grid == 'rows':  # program (image, block of output rows); block = rows x the padded row
    wpad = pallas_support.pow2(out_w)
    n, local = pl.program_id(0), jnp.arange(block)
    row, col = pl.program_id(1) * (block // wpad) + local // wpad, local % wpad
    inside = (row < out_h) & (col < out_w)
    p = (n * out_h + row) * out_w + col  # the output pixel in the flattened batch
    first = (n * height + row) * width + col  # the patch's top-left input pixel
  else:
    p = pl.program_id(0) * block + jnp.arange(block)
    inside = p < total
    n, q = p // (out_h * out_w), p % (out_h * out_w)
    first = (n * height + q // out_w) * width + q % out_w
  if form == 'dot':
    t = jnp.arange(_TAPS_PAD)
    i, j, c = t // (k * channels), (t // channels) % k, t % channels  # the kernel's (k, k, C) order
    offsets = first[:, None] * channels + ((i * width + j) * channels + c)[None, :]
    patches = plgpu.load(x_ref.at[offsets], mask=inside[:, None] & (t < k * k * channels)[None, :], other=0)
    # HIGHEST: f32 inputs (tests, f32 recipes) are not rounded to TF32; bf16 ones are exact either way.
    sums = jnp.dot(patches, w_ref[...].astype(patches.dtype), precision=jax.lax.Precision.HIGHEST,
                   preferred_element_type=jnp.float32) + b_ref[...][None, :]
  else:  # 'fma': one multiply-add per tap on the CUDA cores; no shared-memory staging for a dot
    sums = jnp.broadcast_to(b_ref[...][None, :], (p.shape[0], w_ref.shape[1]))
    for t in range(k * k * channels):
      i, j, c = t // (k * channels), (t // channels) % k, t % channels
      v = plgpu.load(x_ref.at[first * channels + ((i * width + j) * channels + c)], mask=inside, other=0)
      sums = sums + v.astype(jnp.float32)[:, None] * w_ref[t][None, :]
  pre = sums.astype(y_ref.dtype).astype(jnp.float32)
  f = jnp.arange(w_ref.shape[1])
  out = p[:, None] * features + f[None, :]
  # No channel mask when F is a power of two, so that Triton can prove the stores contiguous.
  mask = inside[:, None] if features == w_ref.shape[1] else inside[:, None] & (f < features)[None, :]
  plgpu.store(y_ref.at[out], _gelu(pre, approximate, fast_tanh).astype(y_ref.dtype), mask=mask)


def _pallas_whiten_gelu(x, kernel, bias, approximate: bool, block: int = BLOCK, warps: int = WARPS, form: str = FORM,
                        grid: str = GRID, fast_tanh: bool = False):
  images, height, width, channels = x.shape
  k, features = kernel.shape[0], kernel.shape[-1]
  total = images * (height - k + 1) * (width - k + 1)
  fpad = max(16, pallas_support.pow2(features))
  taps = jnp.pad(kernel.reshape(k * k * channels, features), ((0, _TAPS_PAD - k * k * channels), (0, fpad - features)))
  if grid == 'rows':
    wpad = pallas_support.pow2(width - k + 1)
    block = max(block, wpad)  # whole padded rows
    programs = (images, pl.cdiv(height - k + 1, block // wpad))
  else:
    programs = (pl.cdiv(total, block),)
  # approx_tanh is inline PTX: Pallas's interpreter (CPU) computes the exact form instead.
  body = functools.partial(_kernel, height=height, width=width, channels=channels, k=k, features=features,
                           total=total, approximate=approximate, block=block, form=form, grid=grid,
                           fast_tanh=fast_tanh and pallas_support.on_gpu())
  y = pl.pallas_call(
      body, grid=programs,
      out_shape=jax.ShapeDtypeStruct((total * features,), x.dtype),
      compiler_params=plgpu.CompilerParams(num_warps=warps, num_stages=1),
      cost_estimate=pl.CostEstimate(flops=2 * total * features * k * k * channels, transcendentals=total * features,
                                    bytes_accessed=(x.size + total * features) * x.dtype.itemsize),
      interpret=not pallas_support.on_gpu(), name='whiten_gelu',
  )(x.reshape(-1), taps.astype(x.dtype).astype(jnp.float32), jnp.pad(bias.astype(jnp.float32), (0, fpad - features)))
  return y.reshape(images, height - k + 1, width - k + 1, features)


def _forward_fn(approximate: bool, mesh, fast_tanh: bool, shape: tuple):
  # A symbolic dimension (jax.export's batch 'b') cannot size the kernel's grid: XLA's form then.
  if not pallas_support.kernels_available() or not all(isinstance(d, int) for d in shape):
    return functools.partial(whiten_gelu_reference, approximate=approximate)
  return pallas_support.per_batch_shard(
      functools.partial(_pallas_whiten_gelu, approximate=approximate, fast_tanh=fast_tanh), mesh,
      (P(DATA_AXIS), P(), P()), summed=False)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _whiten_gelu(x, kernel, bias, approximate, mesh, fast_tanh):
  return _forward_fn(approximate, mesh, fast_tanh, x.shape)(x, kernel, bias)


def _whiten_gelu_fwd(x, kernel, bias, approximate, mesh, fast_tanh):
  return _forward_fn(approximate, mesh, fast_tanh, x.shape)(x, kernel, bias), (x, kernel, bias)


def _whiten_gelu_bwd(approximate, mesh, fast_tanh, residuals, g):
  # The backward is the exact GELU's (also with fast_tanh): it only runs for the bias steps.
  _, vjp = jax.vjp(functools.partial(whiten_gelu_reference, approximate=approximate), *residuals)
  return vjp(g)


_whiten_gelu.defvjp(_whiten_gelu_fwd, _whiten_gelu_bwd)


def whiten_gelu(x: jax.Array, kernel: jax.Array, bias: jax.Array, *, approximate: bool, mesh=None,
                fast_tanh: bool = False) -> jax.Array:
  """GELU(k x k 'VALID' conv of x (N, H, W, C) with kernel (k, k, C, F) + bias (F,)), in x's dtype.

  The kernel is used in x's dtype and the bias in f32, as PatchWhiten rounds them; the sums are f32
  (products of bf16 values are exact in f32, so only their order differs from PatchWhiten's) and are
  rounded to x's dtype before the GELU, which is computed in f32 and rounded once. Differentiable in
  all three (XLA's backward). k*k*C <= 16.

  mesh: the data-parallel mesh when x is batch-sharded over more than one device; each device then
  runs the kernel on its own shard.

  fast_tanh (with approximate): the forward's tanh is the GPU's tanh.approx.f32 instruction, not the exact
  form; XLA (TPU) and Pallas's interpreter (CPU) compute the exact form.

  A shape with a symbolic dimension (a jax.export with a symbolic batch) is computed by XLA
  (whiten_gelu_reference, the exact tanh), since the kernel's grid needs concrete sizes."""
  if x.ndim != 4 or kernel.ndim != 4 or kernel.shape[0] != kernel.shape[1] or kernel.shape[2] != x.shape[-1]:
    raise ValueError(f'whiten_gelu: x {x.shape} (NHWC) and kernel {kernel.shape} (k, k, C, F) expected')
  k, _, channels, features = kernel.shape
  if k * k * channels > _TAPS_PAD or bias.shape != (features,):
    raise ValueError(f'whiten_gelu: kernel {kernel.shape} needs k*k*C <= {_TAPS_PAD}; bias {bias.shape} must be '
                     f'({features},)')
  if fast_tanh and not approximate:
    raise ValueError('whiten_gelu: fast_tanh is for the tanh form of the GELU (approximate=True)')
  return _whiten_gelu(x, kernel.astype(x.dtype), bias.astype(jnp.float32), approximate, mesh, fast_tanh)
