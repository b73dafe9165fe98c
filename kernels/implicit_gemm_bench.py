"""Block1's first conv (31x31, 24 -> 64 channels, 3x3) as cuDNN vs the Pallas implicit GEMM
(dawnjax/models/implicit_gemm_conv.py), forward and filter gradient, over a sweep of tilings.

Each figure is the mean of --calls back-to-back dispatches after a warm-up (conv_shapes_bench.time_fn),
all in one process, so the rows compare side by side. TFLOP/s counts the useful FLOPs (24 channels,
31x31 pixels). 'err' is the largest difference from XLA's convolution relative to its largest value.

  python3 kernels/implicit_gemm_bench.py [--batch=1536] [--calls=200] [--quick]
  python3 kernels/implicit_gemm_bench.py --pooled [--quick]

The filter-gradient rows cover both grids (Tiling.wgrad_grid): 'flat' tiles of consecutive pixels and 'rows'
tiles of whole rows padded to 32 pixels (no division by the width per pixel); --quick runs the default tiling
in each.

--pooled times only block1's filter gradient behind its 2x2 argmax max-pool, on the 32 channels that
fast.flags' whitening writes: XLA's pool backward (the full-size gradient, pooling.gradient_to_first_max)
then the Pallas filter gradient, against the Pallas kernel reading the pooled gradient and the window
indices itself (implicit_gemm_conv3x3_max_pool's backward).
"""
import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from conv_shapes_bench import bench_parser, rel_err, time_fn
from dawnjax.models import implicit_gemm_conv as ig
from dawnjax.models.pooling import gradient_to_first_max


def main() -> None:
  p = bench_parser(__doc__)
  p.add_argument('--quick', action='store_true', help='the default tiling only')
  p.add_argument('--pooled', action='store_true', help='only the filter gradient behind the pool, two ways')
  args = p.parse_args()
  size, cin, cout = 31, 24, 64
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((args.batch, size, size, cin)), jnp.bfloat16)
  w = jnp.asarray(rng.standard_normal((3, 3, cin, cout)) * 0.1, jnp.bfloat16)
  g = jnp.asarray(rng.standard_normal((args.batch, size, size, cout)), jnp.bfloat16)
  gflop = 2 * args.batch * size * size * cout * cin * 9 / 1e9
  print(f'{jax.devices()[0].device_kind}, jax {jax.__version__}, batch {args.batch}, {args.calls} calls per figure, '
        f'{gflop:.1f} GFLOP per pass')

  if args.pooled:
    pooled_rows(jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, 32 - cin))), gflop, args, rng)
    return
  for channels in (cin, 32):
    # 32: the 24 channels followed by 8 zero channels, as a whitening layer could write them (the cost
    # of writing them is not in these rows).
    xc = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, channels - cin)))
    wc = jnp.pad(w, ((0, 0), (0, 0), (0, channels - cin), (0, 0)))
    rows(xc, wc, g, gflop, args)


def rows(x, w, g, gflop, args) -> None:
  ref = ig.reference_conv3x3
  channels = x.shape[-1]
  y_ref = jax.jit(ref)(x, w)
  ref_wgrad = lambda x, w, g: jax.vjp(lambda w: ref(x, w), w)[1](g)[0]
  dw_ref = jax.jit(ref_wgrad)(x, w, g)
  dw_ref32 = jax.jit(ref_wgrad)(*(a.astype(jnp.float32) for a in (x, w, g)))
  cudnn_fwd = time_fn(ref, (x, w), args.calls)
  cudnn_wgrad = time_fn(ref_wgrad, (x, w, g), args.calls)
  print(f'C={channels} cuDNN (XLA conv)       fwd {cudnn_fwd:.4f} ms {gflop / cudnn_fwd:5.0f} TF/s | '
        f'wgrad {cudnn_wgrad:.4f} ms {gflop / cudnn_wgrad:5.0f} TF/s  (bf16 wgrad err vs f32 {rel_err(dw_ref, dw_ref32):.1e})',
        flush=True)
  default = ig.Tiling()
  fwd_tilings = [default] if args.quick else [
      dataclasses.replace(default, fwd_block=b, fwd_warps=nw) for b, nw in itertools.product((64, 128, 256), (4, 8))]
  for t in fwd_tilings:
    label = f'C={channels} block {t.fwd_block:>3} warps {t.fwd_warps}'
    try:
      fn = lambda x, w, t=t: ig._forward(x, w, t)
      err = rel_err(jax.jit(fn)(x, w), y_ref)
      ms = time_fn(fn, (x, w), args.calls)
      print(f'pallas fwd   {label}  {ms:.4f} ms {gflop / ms:5.0f} TF/s  {cudnn_fwd / ms:4.2f}x cuDNN  err {err:.1e}',
            flush=True)
    except Exception as e:  # a tiling may not compile (registers, shared memory): report and go on
      print(f'pallas fwd   {label}  FAILED {type(e).__name__}: {str(e)[:200]}')
  for t in wgrad_tilings(args.quick):
    label = (f'C={channels} grid {t.wgrad_grid:<4} block {t.wgrad_block:>3} warps {t.wgrad_warps} '
             f'stages {t.wgrad_stages} programs {t.wgrad_programs:>3}')
    try:
      fn = lambda x, g, t=t: ig._filter_grad(x, g, t).astype(jnp.bfloat16)
      err = rel_err(jax.jit(fn)(x, g), dw_ref32)
      ms = time_fn(fn, (x, g), args.calls)
      print(f'pallas wgrad {label}  {ms:.4f} ms {gflop / ms:5.0f} TF/s  {cudnn_wgrad / ms:4.2f}x cuDNN  '
            f'err vs f32 {err:.1e}', flush=True)
    except Exception as e:
      print(f'pallas wgrad {label}  FAILED {type(e).__name__}: {str(e)[:200]}')


def wgrad_tilings(quick: bool) -> list[ig.Tiling]:
  """The default, then (unless quick) a sweep; both grids ('rows': tiles of whole padded rows)."""
  default = ig.Tiling()
  grids = [g for g in ('flat', 'rows') if g != default.wgrad_grid]
  if quick:
    return [default] + [dataclasses.replace(default, wgrad_grid=g) for g in grids]
  sweep = [dataclasses.replace(default, wgrad_block=b, wgrad_stages=st, wgrad_programs=gp, wgrad_grid=g)
           for g, b, st, gp in itertools.product(('flat', 'rows'), (32, 64, 128), (3, 4), (132, 264))]
  return [default] + [t for t in sweep if t != default]


def pooled_rows(x, gflop, args, rng) -> None:
  batch, size, _, _ = x.shape
  pooled = (batch, size // 2, size // 2, 64)
  g = jnp.asarray(rng.standard_normal(pooled), jnp.bfloat16)
  first = jnp.asarray(rng.integers(0, 4, pooled), jnp.int8)
  expand = lambda g, first: gradient_to_first_max(g, first, 2, size % 2, size % 2)
  select_ms = time_fn(expand, (g, first), args.calls)
  print(f'pool backward alone (XLA, writes the {size}x{size} gradient)  {select_ms:.4f} ms', flush=True)
  for t in wgrad_tilings(args.quick):
    label = (f'grid {t.wgrad_grid:<4} block {t.wgrad_block:>3} warps {t.wgrad_warps} stages {t.wgrad_stages} '
             f'programs {t.wgrad_programs:>3}')
    try:
      unfused = lambda x, g, first, t=t: ig._filter_grad(x, expand(g, first), t)
      fused = lambda x, g, first, t=t: ig._filter_grad(x, g, t, first=first)
      same = bool(jnp.array_equal(jax.jit(unfused)(x, g, first), jax.jit(fused)(x, g, first)))
      a = time_fn(unfused, (x, g, first), args.calls)
      b = time_fn(fused, (x, g, first), args.calls)
      print(f'{label}  pool backward + wgrad {a:.4f} ms | wgrad reading the pooled gradient {b:.4f} ms '
            f'({b / a - 1:+.0%}, {gflop / b:4.0f} TF/s)  same result: {same}', flush=True)
    except Exception as e:  # a tiling may not compile (registers, shared memory): report and go on
      print(f'{label}  FAILED {type(e).__name__}: {str(e)[:200]}')


if __name__ == '__main__':
  main()
