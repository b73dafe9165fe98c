"""ResNet v1.5 (He et al. 2016, with the stride in the 3x3 conv as in torchvision) in Flax.

Every depth (10, 18, 26, 34, 50, 101, 152) comes from one `ResNet` module: `RESNETS['resnet50']` is
`partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BottleneckBlock)` (the layout of flax's
examples/imagenet). Activations and matmuls run in `dtype` (bf16 by default) while parameters and
BatchNorm statistics stay fp32. Large-batch recipes need two details that are built in:
  - the last BatchNorm of every residual block starts with gamma = 0 (Goyal et al. 2017), so
    each block starts as the identity and early large learning rates do not blow up;
  - optional "ghost" BatchNorm: statistics over sub-batches of `ghost_batch_size` examples
    (MLPerf's `model_bn_span`, Goyal's per-GPU BN), instead of over the whole global batch.
NHWC layout; the stem can optionally consume a 2x2 space-to-depth input (MLPerf's TPU trick:
a 4x4 stride-1 conv on 12 channels instead of a 7x7 stride-2 conv on 3, which maps better onto
matrix units), with the same 8x8 receptive field (not weight-compatible with the 7x7 stem).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dawnjax.models.batchnorm import BatchNormAct
from dawnjax.models.pooling import max_and_first_index

ModuleDef = Any

# He-normal over fan-out: what torchvision and the Goyal et al. recipe use for ResNet convs.
conv_kernel_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')
# Goyal et al.: the final classifier starts from N(0, 0.01^2).
head_kernel_init = nn.initializers.normal(0.01)


class BatchNorm(BatchNormAct):
  """BatchNorm with fp32 statistics; over the whole batch, or over ghost batches of `ghost_size`.

  Same variables as flax's nn.BatchNorm (params scale/bias, batch_stats mean/var), so checkpoints
  interchange. Under jit with the batch sharded over a mesh, whole-batch statistics are
  global-batch statistics (XLA inserts the all-reduce). With `ghost_size` k the batch is viewed
  as (batch/k, k, ...) and each group is normalised by its own statistics; when every device's
  share of the batch is a multiple of k, groups never straddle devices and no communication is
  needed. The running averages take the mean over groups. Statistics are one pass (E[x], E[x^2]),
  so the cross-device reduction of global BN is a single all-reduce of both moments; the
  normalisation is folded into one multiply-add per element. `act` (the blocks' ReLU) follows it.
  Differentiated by autodiff; `bn_impl='fused'` switches on the hand-written backward.
  """
  use_scale: bool = True
  folded: bool = True
  hand_written_backward: bool = False


_NORMS = {'flax': BatchNorm, 'fused': functools.partial(BatchNorm, hand_written_backward=True)}
BN_IMPLS = tuple(_NORMS)


def _no_activation(v):
  return v


class FoldedBatchNorm(nn.Module):
  """What is left of an inference BatchNorm once `fold_batchnorm` has scaled the convolution before it:
  the shift, added in the convolution's own dtype, then the activation. In that form XLA hands
  conv + shift (+ the residual) + ReLU to cuDNN as one fused convolution instead of an elementwise kernel
  after each convolution. Variables: params 'bias' only."""
  act: Callable = _no_activation
  dtype: Any = jnp.bfloat16
  scale_init: Any = None  # accepted (the blocks pass it) and unused: the scale lives in the convolution

  @nn.compact
  def __call__(self, x):
    bias = self.param('bias', nn.initializers.zeros, (x.shape[-1],), jnp.float32)
    return self.act(x + bias.astype(x.dtype))


def fold_batchnorm(variables: dict, epsilon: float) -> dict:
  """{'params', 'batch_stats'} of a ResNet -> {'params'} of the same ResNet built with
  `folded_batchnorm=True`: each convolution's kernel times its BatchNorm's scale / sqrt(var + eps) per
  output channel, each BatchNorm reduced to its shift bias - mean * that factor. The same function up to
  rounding (a convolution is linear in its kernel); under jit with constant weights XLA computes it once,
  at compile time. A BatchNorm `<x>bn<y>` belongs to the convolution `<x>conv<y>` beside it."""

  def fold(params, stats):
    out = {}
    for name, sub in params.items():
      bn = name.replace('conv', 'bn')
      if 'conv' in name and 'kernel' in sub and bn in params:
        norm, moments = params[bn], stats[bn]
        mul = norm['scale'] * jax.lax.rsqrt(moments['var'] + epsilon)
        out[name] = {**sub, 'kernel': sub['kernel'] * mul}
        out[bn] = {'bias': norm['bias'] - moments['mean'] * mul}
      elif name not in out and isinstance(sub, dict) and 'kernel' not in sub and 'scale' not in sub:
        out[name] = fold(sub, stats.get(name, {}))
      elif name not in out:
        out[name] = sub
    return out

  return {'params': fold(variables['params'], variables['batch_stats'])}


class BasicBlock(nn.Module):
  """Two 3x3 convs (ResNet-18/34)."""
  filters: int
  conv: ModuleDef
  norm: ModuleDef
  strides: tuple[int, int] = (1, 1)
  zero_init_residual: bool = True

  @nn.compact
  def __call__(self, x):
    last_init = nn.initializers.zeros if self.zero_init_residual else nn.initializers.ones
    y = self.conv(self.filters, (3, 3), self.strides, name='conv1')(x)
    y = self.norm(name='bn1', act=nn.relu)(y)
    y = self.conv(self.filters, (3, 3), name='conv2')(y)
    y = self.norm(scale_init=last_init, name='bn2')(y)
    if x.shape != y.shape:
      x = self.conv(self.filters, (1, 1), self.strides, name='proj_conv')(x)
      x = self.norm(name='proj_bn')(x)
    return nn.relu(x + y)


class BottleneckBlock(nn.Module):
  """1x1 -> 3x3 (carries the stride: v1.5) -> 1x1 with 4x expansion (ResNet-26/50/101/152)."""
  filters: int
  conv: ModuleDef
  norm: ModuleDef
  strides: tuple[int, int] = (1, 1)
  zero_init_residual: bool = True

  @nn.compact
  def __call__(self, x):
    last_init = nn.initializers.zeros if self.zero_init_residual else nn.initializers.ones
    y = self.conv(self.filters, (1, 1), name='conv1')(x)
    y = self.norm(name='bn1', act=nn.relu)(y)
    y = self.conv(self.filters, (3, 3), self.strides, name='conv2')(y)
    y = self.norm(name='bn2', act=nn.relu)(y)
    y = self.conv(self.filters * 4, (1, 1), name='conv3')(y)
    y = self.norm(scale_init=last_init, name='bn3')(y)
    if x.shape != y.shape:
      x = self.conv(self.filters * 4, (1, 1), self.strides, name='proj_conv')(x)
      x = self.norm(name='proj_bn')(x)
    return nn.relu(x + y)


def space_to_depth(x: jax.Array, block: int = 2) -> jax.Array:
  """[N, H, W, C] -> [N, H/b, W/b, b*b*C]: each b x b pixel block becomes one pixel."""
  n, h, w, c = x.shape
  if h % block or w % block:
    raise ValueError(f'space_to_depth: image {h}x{w} is not a multiple of {block}')
  x = x.reshape(n, h // block, block, w // block, block, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(n, h // block, w // block, block * block * c)


STEM_POOLS = ('window', 'argmax')


def stem_max_pool(x: jax.Array, impl: str = 'window') -> jax.Array:
  """ResNet's 3x3 stride-2 max pool (padding 1), NHWC.

  'window' is flax's nn.max_pool: its gradient is XLA's select-and-scatter, 6.0 ms of a 157 ms
  ResNet-50 step at batch 1024 on an H100 (3.8%, experiments/results/imagenet/h100_2026-11-23_s2d).
  'argmax' gives the same values and the same gradient (each window's first maximum in row-major
  order takes it, as select-and-scatter does): the forward keeps that position as int8, the backward
  places the gradient with nine strided pads that XLA fuses into one pass.
  """
  if impl == 'window':
    return nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
  if impl == 'argmax':
    return _argmax_pool_3x3s2(x)
  raise ValueError(f'stem pool {impl!r}: expected one of {STEM_POOLS}')


def _pool_views(x: jax.Array) -> list[jax.Array]:
  """The 9 window positions of a 3x3/2 pool with padding 1, as strided views of the -inf padded input."""
  _, h, w, _ = x.shape
  ho, wo = (h - 1) // 2 + 1, (w - 1) // 2 + 1
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf)
  return [xp[:, i:i + 2 * ho - 1:2, j:j + 2 * wo - 1:2, :] for i in range(3) for j in range(3)]


@jax.custom_vjp
def _argmax_pool_3x3s2(x):
  return functools.reduce(jnp.maximum, _pool_views(x))


def _argmax_pool_3x3s2_fwd(x):
  m, first = max_and_first_index(_pool_views(x))
  return m, (first, x.shape)


def _argmax_pool_3x3s2_bwd(res, g):
  first, (_, h, w, _) = res
  ho, wo = g.shape[1], g.shape[2]
  zero = jnp.zeros((), jnp.float32)
  gx = None
  for p in range(9):
    i, j = divmod(p, 3)
    hit = jnp.where(first == p, g.astype(jnp.float32), zero)
    # Output (oh, ow) read input row 2*oh + i - 1: interior padding 1 spaces the values by 2 and
    # the (possibly negative) edge padding shifts them into place.
    placed = jax.lax.pad(hit, zero, ((0, 0, 0), (i - 1, h - (i - 1) - (2 * ho - 1), 1),
                                     (j - 1, w - (j - 1) - (2 * wo - 1), 1), (0, 0, 0)))
    gx = placed if gx is None else gx + placed
  return (gx.astype(g.dtype),)


_argmax_pool_3x3s2.defvjp(_argmax_pool_3x3s2_fwd, _argmax_pool_3x3s2_bwd)


class ResNet(nn.Module):
  """ImageNet ResNet: stem, four stages of residual blocks, global average pool, linear head.

  Returns fp32 logits [N, num_classes] for uint8-derived, already normalised NHWC input.
  """
  stage_sizes: Sequence[int]
  block_cls: ModuleDef
  num_classes: int = 1000
  num_filters: int = 64
  dtype: Any = jnp.bfloat16
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  ghost_batch_size: int | None = None
  space_to_depth_stem: bool = False
  zero_init_residual: bool = True
  bn_impl: str = 'flax'  # 'flax': BatchNorm then the activation, by autodiff; 'fused': FusedBatchNorm
  pool_impl: str = 'window'  # STEM_POOLS, see stem_max_pool
  folded_batchnorm: bool = False  # inference only: FoldedBatchNorm, variables from fold_batchnorm

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype, param_dtype=jnp.float32,
                             kernel_init=conv_kernel_init)
    norm = functools.partial(_NORMS[self.bn_impl], use_running_average=not train, momentum=self.bn_momentum,
                             epsilon=self.bn_epsilon, dtype=self.dtype, ghost_size=self.ghost_batch_size)
    if self.folded_batchnorm:
      if train:
        raise ValueError('folded_batchnorm is an inference form: it has no batch statistics to train')
      norm = functools.partial(FoldedBatchNorm, dtype=self.dtype)
    if self.space_to_depth_stem:
      # Output pixel o sees input rows 2o-4..2o+3: the 7x7 stem's window 2o-3..2o+3 and one more.
      x = space_to_depth(x, 2)
      x = conv(self.num_filters, (4, 4), (1, 1), padding=((2, 1), (2, 1)), name='stem_conv')(x)
    else:
      x = conv(self.num_filters, (7, 7), (2, 2), padding=((3, 3), (3, 3)), name='stem_conv')(x)
    x = norm(name='stem_bn', act=nn.relu)(x)
    x = stem_max_pool(x, self.pool_impl)
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        strides = (2, 2) if i > 0 and j == 0 else (1, 1)
        x = self.block_cls(self.num_filters * 2**i, conv=conv, norm=norm, strides=strides,
                           zero_init_residual=self.zero_init_residual,
                           name=f'stage{i + 1}_block{j + 1}')(x)
    x = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
    x = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=jnp.float32,
                 kernel_init=head_kernel_init, name='head')(x)
    return x.astype(jnp.float32)


RESNETS: dict[str, Callable[..., ResNet]] = {
    # ResNet-10: one basic block per stage; small enough to compile fast in tests and debugging.
    'resnet10': functools.partial(ResNet, stage_sizes=(1, 1, 1, 1), block_cls=BasicBlock),
    'resnet18': functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block_cls=BasicBlock),
    'resnet26': functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block_cls=BottleneckBlock),
    'resnet34': functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BasicBlock),
    'resnet50': functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BottleneckBlock),
    'resnet101': functools.partial(ResNet, stage_sizes=(3, 4, 23, 3), block_cls=BottleneckBlock),
    'resnet152': functools.partial(ResNet, stage_sizes=(3, 8, 36, 3), block_cls=BottleneckBlock),
}


def create_resnet(name: str, **kwargs) -> ResNet:
  """RESNETS[name](**kwargs); ValueError naming the choices for an unknown name."""
  if name not in RESNETS:
    raise ValueError(f'unknown model {name!r}; expected one of {sorted(RESNETS)}')
  return RESNETS[name](**kwargs)
