"""Each convolution of the CIFAR-10 net timed alone, at the training batch, with its channel-count
variants: is a layer slow because of its shape, and would zero-padding its channels help?

The H200 profile of fast.flags (results/cifar10_jpeg/h200_2026-12-01_wall7, call 9) shows some
convolutions running Ampere-generation (sm80 CUTLASS) kernels instead of Hopper ones. The suspects are
the layers with few channels: the 2x2 whitening conv (3 input channels) and block1's first conv (24
input channels). Padding with zero channels keeps the network's function (a zero input channel
with zero weights adds exact zeros) at the price of more FLOPs; this prints whether the kernel
time goes down anyway.

Each row: forward, filter gradient (wgrad) and input gradient (dgrad) of one conv, bf16 in and out
(f32 accumulation inside cuDNN), NHWC, timed as the mean of --calls back-to-back dispatches (device-bound: the
queue never drains), after a warm-up. TFLOP/s counts the useful (unpadded) FLOPs.

Then block1's first conv with its three horizontal taps gathered into channels
(models/airbench.KwFoldedConv: a 3x1 conv on 72 channels, or 96 with each tap zero-padded to 32),
with the gathering pass timed alone and fused into the forward.

Then (or alone, with --whiten_only) the whitening layer + GELU in each form of models/airbench.PatchWhiten,
and as the Pallas kernel of models/whiten_kernel.py over its launch parameters, on 24 and on 32 output channels.

  python3 kernels/conv_shapes_bench.py [--batch=1536] [--calls=200] [--whiten_only]
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from dawnjax.models import whiten_kernel
from dawnjax.models.airbench import PatchWhiten, gather_horizontal_taps, padded_channels

# name, spatial size, in channels (real), out channels, kernel, padding, [padded in-channel variants]
LAYERS = (
    ('whiten', 32, 3, 24, 2, 'VALID', (4, 8)),
    ('block1.conv1', 31, 24, 64, 3, 'SAME', (32,)),
    ('block1.conv2', 15, 64, 64, 3, 'SAME', ()),
    ('block2.conv1', 15, 64, 256, 3, 'SAME', ()),
    ('block2.conv2', 7, 256, 256, 3, 'SAME', ()),
    ('block3.conv2', 3, 256, 256, 3, 'SAME', ()),
)


def conv(x, w, padding):
  # bf16 in and out, as flax.linen.Conv(dtype=bf16) emits it (cuDNN accumulates in f32 inside).
  return jax.lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def bench_parser(doc: str) -> argparse.ArgumentParser:
  """--batch and --calls, shared by the kernel benches."""
  p = argparse.ArgumentParser(description=doc.splitlines()[0])
  p.add_argument('--batch', type=int, default=1536)
  p.add_argument('--calls', type=int, default=200)
  return p


def rel_err(a, b) -> float:
  """Largest |a - b| relative to b's largest magnitude."""
  a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
  return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def time_fn(fn, args, calls: int) -> float:
  """Mean ms per call over `calls` back-to-back dispatches (after 20 warm-up calls)."""
  exe = jax.jit(fn).lower(*args).compile()
  jax.block_until_ready([exe(*args) for _ in range(20)])
  start = time.perf_counter()
  jax.block_until_ready([exe(*args) for _ in range(calls)])
  return (time.perf_counter() - start) / calls * 1e3


def main() -> None:
  p = bench_parser(__doc__)
  p.add_argument('--whiten_only', action='store_true', help="only the whitening forms' rows")
  args = p.parse_args()
  if args.whiten_only:
    whiten_rows(args.batch, args.calls, np.random.default_rng(0))
    return
  rng = np.random.default_rng(0)
  print(f'{jax.devices()[0].device_kind}, jax {jax.__version__}, batch {args.batch}, {args.calls} calls per figure')
  print(f'{"layer":<14} {"Cin":>4} {"Cout":>4} {"HxW":>5} {"GFLOP":>7} | '
        f'{"fwd ms":>7} {"TF/s":>5} | {"wgrad ms":>8} {"TF/s":>5} | {"dgrad ms":>8} {"TF/s":>5}')
  for name, size, cin, cout, k, padding, pads in LAYERS:
    out_size = size - k + 1 if padding == 'VALID' else size
    gflop = 2 * args.batch * out_size * out_size * cout * cin * k * k / 1e9
    for c in (cin, *pads):
      x = jnp.asarray(rng.standard_normal((args.batch, size, size, c)), jnp.bfloat16)
      w = jnp.asarray(rng.standard_normal((k, k, c, cout)) * 0.1, jnp.bfloat16)
      g = jnp.asarray(rng.standard_normal((args.batch, out_size, out_size, cout)), jnp.bfloat16)
      fwd = time_fn(lambda x, w: conv(x, w, padding), (x, w), args.calls)
      wgrad = time_fn(lambda x, w, g: jax.vjp(lambda w: conv(x, w, padding), w)[1](g)[0], (x, w, g), args.calls)
      dgrad = time_fn(lambda x, w, g: jax.vjp(lambda x: conv(x, w, padding), x)[1](g)[0], (x, w, g), args.calls)
      cells = ' | '.join(f'{ms:{8 if i else 7}.4f} {gflop / ms:5.0f}' for i, ms in enumerate((fwd, wgrad, dgrad)))
      print(f'{name:<14} {c:>4} {cout:>4} {out_size:>2}x{out_size:<2} {gflop:7.1f} | {cells}', flush=True)
  folded_rows(args.batch, args.calls, rng)
  whiten_rows(args.batch, args.calls, rng)


def folded_rows(batch: int, calls: int, rng) -> None:
  size, cin, cout = 31, 24, 64
  gflop = 2 * batch * size * size * cout * cin * 9 / 1e9
  x = jnp.asarray(rng.standard_normal((batch, size, size, cin)), jnp.bfloat16)
  g = jnp.asarray(rng.standard_normal((batch, size, size, cout)), jnp.bfloat16)
  padding = ((1, 1), (0, 0))
  for taps in (cin, 32):
    w = jnp.asarray(rng.standard_normal((3, 1, 3 * taps, cout)) * 0.1, jnp.bfloat16)
    xf = gather_horizontal_taps(x, taps)
    fold = time_fn(lambda x: gather_horizontal_taps(x, taps), (x,), calls)
    both = time_fn(lambda x, w: conv(gather_horizontal_taps(x, taps), w, padding), (x, w), calls)
    fwd = time_fn(lambda x, w: conv(x, w, padding), (xf, w), calls)
    wgrad = time_fn(lambda x, w, g: jax.vjp(lambda w: conv(x, w, padding), w)[1](g)[0], (xf, w, g), calls)
    dgrad = time_fn(lambda x, w, g: jax.vjp(lambda x: conv(x, w, padding), x)[1](g)[0], (xf, w, g), calls)
    cells = ' | '.join(f'{ms:{8 if i else 7}.4f} {gflop / ms:5.0f}' for i, ms in enumerate((fwd, wgrad, dgrad)))
    print(f'{"b1.conv1 kw3x" + str(taps):<14} {3 * taps:>4} {cout:>4} {size:>2}x{size:<2} {gflop:7.1f} | {cells}'
          f' | gather alone {fold:.4f} ms, gather + fwd {both:.4f} ms', flush=True)


def whiten_rows(batch: int, calls: int, rng) -> None:
  """The whitening layer + its tanh GELU forward, as training runs it (bf16 out), in each form of
  models/airbench.PatchWhiten, with 24 output channels and with 8 zero channels more (what
  --block1_conv1_impl=padded_igemm reads). The input is the augmented batch (bf16, 32x32x3)."""
  x = jnp.asarray(rng.standard_normal((batch, 32, 32, 3)), jnp.bfloat16)
  params = {'params': {'kernel': jnp.asarray(rng.standard_normal((2, 2, 3, 24)), jnp.float32),
                       'bias': jnp.asarray(rng.standard_normal(24), jnp.float32)}}
  print(f'whitening + GELU forward, batch {batch}: ms per call')
  for out in (24, padded_channels(24)):
    reference = None
    for form in ('elementwise', 'matmul'):
      layer = PatchWhiten(24, 2, jnp.bfloat16, form=form, padded_features=out)
      fn = lambda p, x, layer=layer: jax.nn.gelu(layer.apply(p, x), approximate=True)
      y = jax.jit(fn)(params, x)
      reference = y if reference is None else reference
      err = rel_err(y, reference)
      print(f'  {out} channels, {form:<11} {time_fn(fn, (params, x), calls):.4f} ms  '
            f'(max difference from elementwise, relative: {err:.1e})', flush=True)
    # The Pallas kernel (models/whiten_kernel.py) over its launch parameters; the first row is the default.
    kernel = jnp.pad(params['params']['kernel'], ((0, 0), (0, 0), (0, 0), (0, out - 24))).astype(jnp.bfloat16)
    bias = jnp.pad(params['params']['bias'], (0, out - 24)).astype(jnp.bfloat16)
    default = (whiten_kernel.FORM, whiten_kernel.BLOCK, whiten_kernel.WARPS)
    for form, block, warps in (default, ('dot', 64, 2), ('dot', 512, 8), ('fma', 128, 4), ('fma', 256, 4),
                               ('fma', 256, 8), ('fma', 512, 8), ('fma', 64, 2)):
      fn = lambda x, k, b, f=form, bl=block, w=warps: whiten_kernel._pallas_whiten_gelu(x, k, b, True, bl, w, f)
      err = rel_err(fn(x, kernel, bias), reference)
      ms = time_fn(fn, (x, kernel, bias), calls)
      print(f'  {out} channels, pallas {form} block {block:>3} warps {warps} {ms:.4f} ms'
            f'  (max difference from elementwise, relative: {err:.1e})', flush=True)


if __name__ == '__main__':
  main()
