"""What bounds the Pallas whitening kernel (dawnjax/models/whiten_kernel.py): the kernel with parts taken out.

On an H200 the kernel takes ~0.10 ms per call at batch 1536 (32x32x3 in, 31x31x32 bf16 out: ~104 MB) where
the memory's bandwidth allows ~0.025 ms; its two forms and five launch shapes all landed at 0.10-0.12 ms
(results/cifar10_jpeg/h200_2026-12-02_s11). Each row here is the same program grid and index arithmetic
with one part left out:
- full: the kernel as fast.flags runs it;
- no_gelu: the sums + bias stored without the GELU;
- store_only: no input loads: the bias through the GELU, stored like the real output;
- load_only: the patch loads and the dot, one f32 per pixel stored (1/16 of the bytes);
- index_only: only the pixel -> patch offset arithmetic, one int32 per pixel stored.
Timed as R distinct calls inside one jitted program (no host dispatch between them), ms per call.
--launch also times the library kernel with small programs (1-2 warps, 32-128 pixels): more programs resident
per SM, in case the serial load -> dot -> store chain of each program is what bounds it.
--variants times the library kernel's grids ('flat': divisions by the output size and width per pixel; 'rows':
coordinates from program ids and shifts) and its GELU's tanh (exact form, or the GPU's tanh.approx.f32).

  python3 kernels/whiten_kernel_probe.py [--batch=1536] [--repeat=20]
"""
import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from dawnjax.models import whiten_kernel as wk

MODES = ('full', 'no_gelu', 'store_only', 'load_only', 'index_only')


def _probe(x_ref, w_ref, b_ref, y_ref, *, mode, height, width, channels, k, features, total, block):
  out_h, out_w = height - k + 1, width - k + 1
  p = pl.program_id(0) * block + jnp.arange(block)
  inside = p < total
  n, q = p // (out_h * out_w), p % (out_h * out_w)
  first = (n * height + q // out_w) * width + q % out_w
  t = jnp.arange(16)
  i, j, c = t // (k * channels), (t // channels) % k, t % channels
  offsets = first[:, None] * channels + ((i * width + j) * channels + c)[None, :]
  if mode == 'index_only':
    plgpu.store(y_ref.at[p], jnp.sum(offsets, axis=1), mask=inside)
    return
  if mode == 'store_only':
    sums = jnp.broadcast_to(b_ref[...][None, :], (block, features)) + p[:, None].astype(jnp.float32) * 1e-9
  else:
    patches = plgpu.load(x_ref.at[offsets], mask=inside[:, None] & (t < k * k * channels)[None, :], other=0)
    sums = jnp.dot(patches, w_ref[...].astype(patches.dtype), preferred_element_type=jnp.float32) + b_ref[...][None, :]
  if mode == 'load_only':
    plgpu.store(y_ref.at[p], jnp.sum(sums, axis=1), mask=inside)
    return
  pre = sums.astype(jnp.bfloat16).astype(jnp.float32)
  out = pre if mode == 'no_gelu' else wk._gelu(pre, True)
  offsets_out = p[:, None] * features + jnp.arange(features)[None, :]
  plgpu.store(y_ref.at[offsets_out], out.astype(y_ref.dtype), mask=inside[:, None])


def probe_call(x, taps, bias, mode, block=wk.BLOCK, warps=wk.WARPS):
  images, height, width, channels = x.shape
  k, features = 2, taps.shape[1]
  total = images * (height - k + 1) * (width - k + 1)
  small = mode in ('load_only', 'index_only')
  out = jax.ShapeDtypeStruct((total,), jnp.int32 if mode == 'index_only' else jnp.float32) if small else \
      jax.ShapeDtypeStruct((total * features,), x.dtype)
  body = functools.partial(_probe, mode=mode, height=height, width=width, channels=channels, k=k, features=features,
                           total=total, block=block)
  return pl.pallas_call(body, grid=(pl.cdiv(total, block),), out_shape=out,
                        compiler_params=plgpu.CompilerParams(num_warps=warps, num_stages=1),
                        interpret=jax.default_backend() == 'cpu', name=f'whiten_probe_{mode}')(x.reshape(-1), taps, bias)


def time_repeated(fn, repeat: int, calls: int = 5) -> float:
  """ms per kernel call: `repeat` distinct calls (bias + i) in one program, the program run `calls` times."""
  def program(x, taps, bias):
    return sum(fn(x, taps, bias + i).ravel()[0].astype(jnp.float32) for i in range(repeat))
  exe = jax.jit(program)
  return lambda *args: _time(exe, args, repeat, calls)


def _time(exe, args, repeat, calls):
  jax.block_until_ready(exe(*args))
  start = time.perf_counter()
  for _ in range(calls):
    jax.block_until_ready(exe(*args))
  return (time.perf_counter() - start) / calls / repeat * 1e3


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--batch', type=int, default=1536)
  p.add_argument('--repeat', type=int, default=20)
  p.add_argument('--launch', action='store_true', help='also the library kernel over small launch shapes')
  p.add_argument('--variants', action='store_true', help='also its grids and tanh forms')
  args = p.parse_args()
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((args.batch, 32, 32, 3)), jnp.bfloat16)
  taps = jnp.asarray(np.pad(rng.standard_normal((12, 32)) * 0.3, ((0, 4), (0, 0))), jnp.bfloat16).astype(jnp.float32)
  bias = jnp.asarray(rng.standard_normal(32), jnp.float32)
  total_bytes = x.size * 2 + args.batch * 31 * 31 * 32 * 2
  print(f'{jax.devices()[0].device_kind}, jax {jax.__version__}, batch {args.batch}, {args.repeat} calls per program; '
        f'the full kernel moves {total_bytes / 1e6:.0f} MB')
  library = lambda x, taps, bias: wk._pallas_whiten_gelu(x, taps[:12].reshape(2, 2, 3, 32).astype(x.dtype), bias, True)
  print(f'library kernel (whiten_kernel._pallas_whiten_gelu)  {time_repeated(library, args.repeat)(x, taps, bias):.4f} ms',
        flush=True)
  if args.launch:
    for block, warps in ((32, 1), (64, 1), (64, 2), (128, 1), (128, 2), (256, 2)):
      fn = lambda x, taps, bias, b=block, w=warps: wk._pallas_whiten_gelu(
          x, taps[:12].reshape(2, 2, 3, 32).astype(x.dtype), bias, True, b, w)
      print(f'library kernel, block {block:>3} warps {warps}  {time_repeated(fn, args.repeat)(x, taps, bias):.4f} ms',
            flush=True)
  if args.variants:
    for grid in wk.GRIDS:
      for block in (128, 256):
        for fast in (False, True):
          fn = lambda x, taps, bias, g=grid, b=block, f=fast: wk._pallas_whiten_gelu(
              x, taps[:12].reshape(2, 2, 3, 32).astype(x.dtype), bias, True, b, wk.WARPS, wk.FORM, g, f)
          ms = time_repeated(fn, args.repeat)(x, taps, bias)
          print(f'library kernel, grid {grid:<4} block {block} tanh {"approx" if fast else "exact ":<6}  {ms:.4f} ms',
                flush=True)
  for mode in MODES:
    ms = time_repeated(functools.partial(probe_call, mode=mode), args.repeat)(x, taps, bias)
    print(f'{mode:<11} {ms:.4f} ms', flush=True)


if __name__ == '__main__':
  main()
