"""The airbench/ResNet-9-family CIFAR network (Keller Jordan's airbench94), in Flax.

NHWC layout, bf16 activations and weights in the matmuls, fp32 BatchNorm statistics.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dawnjax.models.batchnorm import BatchNormAct
from dawnjax.models.implicit_gemm_conv import implicit_gemm_conv3x3, implicit_gemm_conv3x3_max_pool
from dawnjax.models.pooling import gradient_to_first_max, max_and_first_index, window_views
from dawnjax.models.whiten_kernel import patch_conv_sums, whiten_gelu
from dawnjax.recipe_choices import ACTIVATIONS, PADDED_CONV1_IMPLS


def dirac_uniform_init(key, shape, dtype=jnp.float32):
  """PyTorch's default conv init, then identity filters for the first `in` outputs.

  The identity (Dirac) part makes each block start close to a residual connection, which is
  what lets this net train to 94% in ~10 epochs without skip connections.
  """
  kh, kw, cin, cout = shape
  bound = 1.0 / np.sqrt(kh * kw * cin)
  w = jax.random.uniform(key, shape, dtype, -bound, bound)
  n = min(cin, cout)
  dirac = jnp.zeros((kh, kw, cin, n), dtype).at[kh // 2, kw // 2, jnp.arange(n), jnp.arange(n)].set(1)
  return w.at[..., :n].set(dirac)


def torch_linear_init(key, shape, dtype=jnp.float32):
  bound = 1.0 / np.sqrt(shape[0])
  return jax.random.uniform(key, shape, dtype, -bound, bound)


def max_pool(x: jax.Array, k: int, impl: str = 'reshape') -> jax.Array:
  """Non-overlapping k x k max pooling (floor), NHWC.

  'reshape' writes it as a reshape + max: its backward is an elementwise select that XLA fuses,
  where 'window' (reduce_window) backpropagates through select-and-scatter, which an H100 profile
  showed as ~13% of the step (kernels/cifar10_notes.md). 'argmax' keeps the forward values and
  routes the gradient to the first maximum of each window (as PyTorch and cuDNN do) through a
  custom VJP: the forward saves a small int8 window index instead of a full-size mask, and the
  backward is one elementwise pass (autodiff of 'reshape' costs a compare, a select and a pad,
  each a full pass over the unpooled activation, ~14% of the step on the H100).
  Forward values are identical; gradients differ only for exact ties ('reshape' splits them).
  """
  if impl == 'window':
    return nn.max_pool(x, (k, k), strides=(k, k))
  if impl == 'argmax':
    return _argmax_pool(x, k, x.shape[1] % k, x.shape[2] % k)
  b, h, w, c = x.shape
  x = x[:, :h // k * k, :w // k * k]
  return x.reshape(b, h // k, k, w // k, k, c).max(axis=(2, 4))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _argmax_pool(x, k, pad_h, pad_w):
  del pad_h, pad_w  # the floor-cropped rows/columns; only the backward needs them
  return functools.reduce(jnp.maximum, window_views(x, k))


def _argmax_pool_fwd(x, k, pad_h, pad_w):
  return max_and_first_index(window_views(x, k))


def _argmax_pool_bwd(k, pad_h, pad_w, first, g):
  return (gradient_to_first_max(g, first, k, pad_h, pad_w),)


_argmax_pool.defvjp(_argmax_pool_fwd, _argmax_pool_bwd)


def activation_fn(name: str, gelu_approximate: bool = False):
  """The conv blocks' nonlinearity: 'gelu' (airbench; tanh form if gelu_approximate) or 'silu'."""
  if name == 'gelu':
    return functools.partial(nn.gelu, approximate=gelu_approximate)
  if name == 'silu':
    return nn.silu
  raise ValueError(f'activation {name!r}: expected one of {ACTIVATIONS}')


def gather_horizontal_taps(x: jax.Array, tap_channels: int | None = None) -> jax.Array:
  """x's left, centre and right neighbours side by side in channels (zero at the borders): channel
  j*T + c holds input channel c at column offset j - 1, T = tap_channels (>= C; the extra channels
  of each tap are zeros) or C. The input of KwFoldedConv's 3x1 conv, with its kernel's (kw, c) order."""
  channels, width = x.shape[-1], x.shape[2]
  padded = jnp.pad(x, ((0, 0), (0, 0), (1, 1), (0, (tap_channels or channels) - channels)))
  return jnp.concatenate([padded[:, :, j:j + width] for j in range(3)], axis=-1)


class KwFoldedConv(nn.Module):
  """nn.Conv(features, (3, 3), padding='SAME', use_bias=False) with its three horizontal taps
  gathered into channels: the input's left, centre and right neighbours side by side (3*C channels,
  zero at the borders), then a 3x1 convolution with the same kernel reshaped. Same variables (name,
  shape, initialiser), same sums in another order.

  Why: block1's first conv has 24 input channels, for which cuDNN picks Ampere-generation kernels at
  ~175 TFLOP/s on an H200 (forward and filter gradient ~0.23 ms each at batch 1536, where 64-256
  channel layers reach 360-720; kernels/conv_shapes_bench.py). 72 channels may reach the faster
  kernels, at the cost of writing the input three times (one extra pass over it).
  """
  features: int
  dtype: Any = jnp.float32
  kernel_init: Any = dirac_uniform_init

  @nn.compact
  def __call__(self, x):
    channels = x.shape[-1]
    kernel = self.param('kernel', self.kernel_init, (3, 3, channels, self.features), jnp.float32)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    folded = gather_horizontal_taps(x)
    return jax.lax.conv_general_dilated(folded, kernel.reshape(3, 1, 3 * channels, self.features), (1, 1),
                                        ((1, 1), (0, 0)), dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def padded_channels(channels: int) -> int:
  """The channel count block1's 'padded_igemm' conv reads: the next multiple of 32."""
  return -(-channels // 32) * 32


class PaddedIgemmConv(nn.Module):
  """nn.Conv(features, (3, 3), padding='SAME', use_bias=False) on an input whose channels past
  `in_channels` are zeros (AirbenchNet's whitening pass writes them): the same variable (kernel
  (3, 3, in_channels, features), same initialiser) and the same sums.

  Forward: XLA's (cuDNN's) convolution on the padded channels. Filter gradient: the Pallas implicit
  GEMM (models/implicit_gemm_conv.py). Input gradient: XLA's.

  Why: on block1's 24 whitened channels cuDNN picks kernels at ~175 TFLOP/s for both the forward
  and the filter gradient. On an H200 at batch 1536 (kernels/implicit_gemm_bench.py):
  - with 32 channels cuDNN's forward drops from 0.235 to 0.150 ms;
  - its filter gradient rises from 0.245 to 0.290 ms;
  - the Pallas filter gradient on 32 channels takes 0.167 ms.
  The zero channels are written by the pass that writes the whitened image anyway, not by a copy (the
  eighth session's padding copy ate most of the forward's gain).
  """
  features: int
  in_channels: int
  dtype: Any = jnp.float32
  kernel_init: Any = dirac_uniform_init
  mesh: Any = None  # the data-parallel mesh when x is batch-sharded (see implicit_gemm_conv3x3)
  # > 0: the output is max-pooled (non-overlapping pool x pool windows, max_pool's 'argmax'), and the
  # pool's backward is fused into the filter gradient's loads (implicit_gemm_conv3x3_max_pool).
  pool: int = 0

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', self.kernel_init, (3, 3, self.in_channels, self.features), jnp.float32)
    kernel = jnp.pad(kernel.astype(self.dtype), ((0, 0), (0, 0), (0, x.shape[-1] - self.in_channels), (0, 0)))
    if self.pool:
      return implicit_gemm_conv3x3_max_pool(x.astype(self.dtype), kernel, self.pool, mesh=self.mesh)
    return implicit_gemm_conv3x3(x.astype(self.dtype), kernel, forward='xla', mesh=self.mesh)


class ConvGroup(nn.Module):
  features: int
  bn_momentum: float
  dtype: Any
  gelu_approximate: bool
  pool_impl: str = 'reshape'
  activation: str = 'gelu'
  bn_impl: str = 'flax'  # BN_IMPLS
  # CONV1_IMPLS: 'kw_folded' = KwFoldedConv, 'padded_igemm' = PaddedIgemmConv, 'padded_igemm_pool' = the same
  # with the max-pool after it inside (pool_impl must be 'argmax')
  conv1_impl: str = 'conv'
  in_channels: int = 0  # the input's real channels (the rest are zeros), for 'padded_igemm'
  mesh: Any = None  # for 'padded_igemm': its Pallas kernel runs per batch shard

  @nn.compact
  def __call__(self, x, train: bool):
    conv = lambda name: nn.Conv(self.features, (3, 3), padding='SAME', use_bias=False,
                                kernel_init=dirac_uniform_init, dtype=self.dtype, name=name)
    # Scale is frozen at 1 in airbench (only the bias learns), so it is left out entirely.
    norm = lambda name: nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                                     epsilon=1e-12, use_scale=False, dtype=self.dtype, name=name)
    act = activation_fn(self.activation, self.gelu_approximate)
    if self.bn_impl == 'fused':
      norm_act = lambda name: BatchNormAct(not train, act, self.bn_momentum, 1e-12, self.dtype, name=name)
    else:
      norm_act = lambda name: lambda v: act(norm(name)(v))
    # 'padded_igemm_pool' pools inside (argmax pool; the recipe checks pool_impl).
    pooled_inside = self.conv1_impl == 'padded_igemm_pool'
    if self.conv1_impl == 'kw_folded':
      x = KwFoldedConv(self.features, self.dtype, name='conv1')(x)
    elif self.conv1_impl in PADDED_CONV1_IMPLS:
      x = PaddedIgemmConv(self.features, self.in_channels, self.dtype, mesh=self.mesh, pool=2 if pooled_inside else 0,
                          name='conv1')(x)
    else:
      x = conv('conv1')(x)
    if not pooled_inside:
      x = max_pool(x, 2, self.pool_impl)
    x = norm_act('norm1')(x)
    x = conv('conv2')(x)
    x = norm_act('norm2')(x)
    return x


class PatchWhiten(nn.Module):
  """nn.Conv(features, (k, k), padding='VALID') on a few input channels, as k*k*C multiply-adds of
  shifted slices: the same variables (names, shapes, initialisers, so the same init), f32 sums of
  the dtype-rounded input and kernel, one rounding to `dtype` at the end.

  Why: with 3 input channels the convolution does ~12 multiply-adds per output, so it is a pass
  that writes its output (31x31x24 per image) and little else. cuDNN runs it as a GEMM kernel at
  ~0.6 TB/s on an H200 (kernels/conv_shapes_bench.py: 0.14 ms at batch 1536), and the GELU after
  it is another full pass. Written elementwise, XLA fuses the sums with the bias and the GELU into
  one loop fusion (the augmented input and its slices stay two small passes before it: H200 profile
  in results/cifar10_jpeg/h200_2026-12-01_s8). No dot_general appears: that would go to cuBLAS.

  form='matmul' writes the same sums as one matmul instead: the k*k shifted slices side by side in
  channels (k*k*C per pixel), times the kernel as a (k*k*C, features) matrix, accumulated in f32
  (bf16 products are exact in f32, so only the order of the sums differs). Why: at 32 output channels
  (with 'padded_igemm') the elementwise pass took 0.233 ms per step on an H200 for ~110 MB of traffic
  (results/cifar10_jpeg/h200_2026-12-01_s10). Each output element loads its 12 input values and 12
  weights, so the pass is bound by load instructions, not bytes. A GEMM with K=12 reads each patch
  once per pixel.
  """
  features: int
  kernel_size: int
  dtype: Any = jnp.float32
  form: str = 'elementwise'  # or 'matmul'
  # > features: the output carries zero channels up to this count, computed in the same pass from
  # zero weights and bias (exact zeros through GELU). A jnp.pad of the output instead made XLA emit a
  # pad fusion that took 0.238 ms per step on an H200 (results/cifar10_jpeg/h200_2026-12-01_s10).
  padded_features: int = 0

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    kernel, bias = whiten_variables(self, k, x.shape[-1], self.features, self.padded_features)
    # Round as nn.Conv(dtype=...) would feed the convolution, then sum in f32. Each slice is
    # widened where it is used: sliced from an f32 copy, XLA wrote 12 f32 planes before the fused
    # pass (results/cifar10_jpeg/h200_2026-12-01_s8); this order measured -0.2% timed, inside the
    # noise, with the same values.
    x, kernel, bias = x.astype(self.dtype), kernel.astype(self.dtype), bias.astype(self.dtype)
    if self.form == 'matmul':
      h, w = x.shape[1] - k + 1, x.shape[2] - k + 1
      patches = jnp.concatenate([x[:, i:i + h, j:j + w, :] for i in range(k) for j in range(k)], axis=-1)
      sums = jnp.dot(patches, kernel.reshape(-1, kernel.shape[-1]), preferred_element_type=jnp.float32)
      return (sums + bias.astype(jnp.float32)).astype(self.dtype)
    if self.form != 'elementwise':
      raise ValueError(f"PatchWhiten form {self.form!r}: expected 'elementwise' or 'matmul'")
    return patch_conv_sums(x, kernel, bias).astype(self.dtype)


def whiten_variables(module: nn.Module, k: int, channels: int, features: int, padded_features: int):
  """The whitening layer's variables as nn.Conv names and initialises them ('kernel' (k, k, C, F),
  'bias' (F,)), f32, with zero output channels appended up to padded_features."""
  kernel = module.param('kernel', nn.initializers.lecun_normal(), (k, k, channels, features), jnp.float32)
  bias = module.param('bias', nn.initializers.zeros_init(), (features,), jnp.float32)
  extra = max(padded_features - features, 0)
  return jnp.pad(kernel, ((0, 0), (0, 0), (0, 0), (0, extra))), jnp.pad(bias, (0, extra))


class WhitenGelu(nn.Module):
  """PatchWhiten followed by GELU, as one Pallas kernel (models/whiten_kernel.py): the same variables,
  the same f32 sums rounded to `dtype`; the GELU is computed in f32 and rounded once (XLA's rounds
  within the GELU's steps in bf16). XLA computes the backward, and every part where Pallas kernels
  cannot run (TPUs).

  Why: XLA's fused form of the layer + GELU took 0.233 ms per step on an H200 at 32 channels for
  ~0.03 ms worth of traffic; the kernel takes 0.105 ms (see whiten_kernel).
  """
  features: int
  kernel_size: int
  dtype: Any = jnp.float32
  padded_features: int = 0
  gelu_approximate: bool = False
  mesh: Any = None  # the data-parallel mesh when x is batch-sharded (see whiten_gelu)
  fast_tanh: bool = False  # the tanh GELU through the GPU's tanh.approx instruction (see whiten_gelu)

  @nn.compact
  def __call__(self, x):
    kernel, bias = whiten_variables(self, self.kernel_size, x.shape[-1], self.features, self.padded_features)
    return whiten_gelu(x.astype(self.dtype), kernel.astype(self.dtype), bias.astype(self.dtype),
                       approximate=self.gelu_approximate, mesh=self.mesh, fast_tanh=self.fast_tanh)


@dataclasses.dataclass(frozen=True)
class AirbenchConfig:
  widths: Sequence[int] = (64, 256, 256)
  whiten_kernel: int = 2
  bn_momentum: float = 0.6
  # Logit scale: airbench94 multiplies by 1/9; airbench94_muon divides by the last width.
  logit_scale: float = 1.0 / 9.0
  num_classes: int = 10
  dtype: str = 'bfloat16'
  gelu_approximate: bool = False
  pool_impl: str = 'reshape'  # 'reshape' | 'window' | 'argmax', see max_pool
  # The conv blocks' nonlinearity (ACTIVATIONS). The one after the whitening layer stays GELU,
  # as in hiverge cifar10-speedrun, whose blocks use SiLU.
  activation: str = 'gelu'
  bn_impl: str = 'flax'  # BN_IMPLS
  # WHITEN_IMPLS: 'conv' | 'elementwise' | 'matmul' (PatchWhiten's two forms) | 'pallas' (WhitenGelu)
  whiten_impl: str = 'conv'
  # CONV1_IMPLS: block1's first conv (the 24 whitened channels in) as nn.Conv, KwFoldedConv or
  # PaddedIgemmConv (the whitening's output then carries zero channels up to a multiple of 32).
  block1_conv1_impl: str = 'conv'
  # With whiten_impl='pallas' and gelu_approximate: the whitening kernel's tanh is the GPU's tanh.approx.
  whiten_fast_tanh: bool = False

  @property
  def whiten_width(self) -> int:
    # Whitening filters come in +/- pairs of every eigenvector of the patch covariance.
    return 2 * 3 * self.whiten_kernel**2


class AirbenchNet(nn.Module):
  config: AirbenchConfig
  # The data-parallel mesh (dawnjax.parallel) the batch is sharded over, for the layers whose Pallas
  # kernels XLA cannot split (the padded block1 convs, the 'pallas' whitening); None or one device: whole.
  mesh: Any = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    cfg = self.config
    dtype = jnp.dtype(cfg.dtype)
    k = cfg.whiten_kernel
    # Weights are set from the data by `whitening_kernel` and never trained; only the bias is.
    # The padded impls read the whitened image with zero channels up to a multiple of 32.
    padded = padded_channels(cfg.whiten_width) if cfg.block1_conv1_impl in PADDED_CONV1_IMPLS else cfg.whiten_width
    if cfg.whiten_impl == 'pallas':
      x = WhitenGelu(cfg.whiten_width, k, dtype, padded_features=padded, gelu_approximate=cfg.gelu_approximate,
                     mesh=self.mesh, fast_tanh=cfg.whiten_fast_tanh, name='whiten')(x)
    else:
      if cfg.whiten_impl in ('elementwise', 'matmul'):
        x = PatchWhiten(cfg.whiten_width, k, dtype, padded_features=padded, form=cfg.whiten_impl, name='whiten')(x)
      else:
        x = nn.Conv(cfg.whiten_width, (k, k), padding='VALID', use_bias=True, dtype=dtype,
                    name='whiten')(x.astype(dtype))
        x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, padded - cfg.whiten_width)))
      x = nn.gelu(x, approximate=cfg.gelu_approximate)
    for i, width in enumerate(cfg.widths):
      x = ConvGroup(width, cfg.bn_momentum, dtype, cfg.gelu_approximate, cfg.pool_impl, cfg.activation,
                    cfg.bn_impl, cfg.block1_conv1_impl if i == 0 else 'conv', cfg.whiten_width, self.mesh,
                    name=f'block{i + 1}')(x, train)
    x = max_pool(x, 3, cfg.pool_impl)
    x = x.reshape(x.shape[0], -1)
    x = nn.Dense(cfg.num_classes, use_bias=False, dtype=dtype, kernel_init=torch_linear_init,
                 name='head')(x)
    return x.astype(jnp.float32) * cfg.logit_scale


def whitening_kernel(images: jax.Array, kernel_size: int, eps: float = 5e-4) -> jax.Array:
  """Conv kernel (k, k, C, 2*C*k*k) that whitens k x k patches of `images` (N, H, W, C), float.

  Eigenvectors of the patch covariance scaled by 1/sqrt(eigenvalue + eps), with their negatives
  so that the GELU after it keeps both signs of every component.
  """
  n, h, w, c = images.shape
  k = kernel_size
  patches = jnp.stack([images[:, i:h - k + 1 + i, j:w - k + 1 + j, :]
                       for i in range(k) for j in range(k)], axis=3)  # N, H', W', k*k, C
  flat = patches.reshape(-1, k * k * c).astype(jnp.float32)  # (kh, kw, c) order = Flax kernel order
  cov = flat.T @ flat / flat.shape[0]
  evals, evecs = jnp.linalg.eigh(cov)
  evals, evecs = evals[::-1], evecs[:, ::-1]  # largest first, as airbench does
  scaled = evecs / jnp.sqrt(evals + eps)[None, :]
  kernel = scaled.reshape(k, k, c, k * k * c)
  return jnp.concatenate([kernel, -kernel], axis=-1)
