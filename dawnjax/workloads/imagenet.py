"""ImageNet time-to-accuracy (DAWNBench: 93% top-5 on the 50,000 validation images).

ResNet v1.5 (dawnjax.models.resnet), data-parallel over one 'data' mesh axis, trained by a
Python loop over host-decoded uint8 batches: each step is one compiled, donated program
dispatched asynchronously, and nothing synchronises inside an epoch. Crops are decoded on the
host (dawnjax.data.imagenet); mirroring and normalisation run on device inside the step.

A recipe is a list of stages `start_epoch:image_size:global_batch[:min_scale]` (progressive
resizing: e.g. 128 px at batch 4096, then 224 px at 1792, then 288 px at 1024). Each stage with
its own (size, batch) has its own executable; `compile()` builds all of them ahead of time. The
learning rate follows the stage's batch (linear scaling: `lr` per `lr_reference_batch` images),
with linear warm-up and then cosine, polynomial or step decay in epochs.

`dataset='synthetic'` feeds device-resident random batches generated once: the model alone.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from dawnjax import augment, parallel
from dawnjax.data.imagenet import pipeline as pipeline_lib, sources
from dawnjax.data.imagenet.transforms import Crop
from dawnjax.errors import ConfigError
from dawnjax.models.resnet import BN_IMPLS, RESNETS, STEM_POOLS, create_resnet
from dawnjax.models.resnet import fold_batchnorm as fold_batchnorm_variables
from dawnjax import flops as flops_lib
from dawnjax.workloads.base import FlopCounts, Target, Workload

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# DAWNBench's ImageNet target; top-1 75.9% is MLPerf's (for --target_metric=top1Accuracy).
DEFAULT_THRESHOLDS = {'top5Accuracy': 93.0, 'top1Accuracy': 75.9}
SYNTHETIC_NAME = 'synthetic_imagenet'


@dataclasses.dataclass(frozen=True)
class ImageNetRecipe:
  """A submission for the ImageNet workload: model, data stages, optimizer and schedule."""
  # Model.
  model: str = 'resnet50'
  width: int = 64  # channels of the first stage (64 = the standard ResNets)
  dtype: str = 'bfloat16'
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  ghost_batch_size: int = 0  # BatchNorm statistics over groups of this many images; 0 = global batch
  space_to_depth: bool = False
  zero_init_residual: bool = True
  bn_impl: str = 'flax'  # BN_IMPLS: 'fused' = BatchNorm + ReLU with a hand-written backward
  pool_impl: str = 'window'  # STEM_POOLS: 'argmax' = the stem max-pool with a fused backward
  num_classes: int = 0  # 0: from the data
  # Data: 'start_epoch:image_size:global_batch[:min_scale]', first stage at epoch 0.
  epochs: int = 90
  stages: Sequence[str] = ('0:224:1024',)
  min_scale: float = 0.08  # random-resized-crop area range, unless a stage says otherwise
  max_scale: float = 1.0
  eval_size: int = 224  # 0: evaluate at the current training stage's size (fast.ai)
  eval_crop_ratio: float = 0.875
  eval_batch_size: int = 1000
  label_smoothing: float = 0.1
  # Optimizer: 'sgd' (momentum, Nesterov optional, PyTorch order) or 'lars' (optax.lars).
  optimizer: str = 'sgd'
  lr: float = 0.4  # peak learning rate at lr_reference_batch images per step
  lr_reference_batch: int = 1024  # the peak scales linearly with each stage's global batch
  momentum: float = 0.9
  nesterov: bool = True
  weight_decay: float = 5e-5  # never on BatchNorm parameters or biases
  lars_trust_coefficient: float = 0.001
  lars_eps: float = 0.0
  # Schedule in epochs: linear warm-up from warmup_start * peak, then the decay.
  warmup_epochs: float = 5.0
  warmup_start: float = 0.0
  schedule: str = 'cosine'  # 'cosine' | 'polynomial' | 'step'
  poly_power: float = 2.0
  end_lr_factor: float = 0.0  # cosine/polynomial: final lr as a fraction of the peak
  decay_epochs: Sequence[float] = (30.0, 60.0, 80.0)  # 'step': where the lr is multiplied ...
  decay_factors: Sequence[float] = (0.1,)  # ... by these (one value: the same at every epoch)

  def validate(self) -> None:
    if self.model not in RESNETS:
      raise ConfigError(f'--model={self.model!r}: expected one of {sorted(RESNETS)}')
    if self.optimizer not in ('sgd', 'lars'):
      raise ConfigError(f"--optimizer={self.optimizer!r}: expected 'sgd' or 'lars'")
    if self.schedule not in ('cosine', 'polynomial', 'step'):
      raise ConfigError(f"--schedule={self.schedule!r}: expected 'cosine', 'polynomial' or 'step'")
    if self.dtype not in ('bfloat16', 'float32', 'float16'):
      raise ConfigError(f"--dtype={self.dtype!r}: expected 'bfloat16', 'float32' or 'float16'")
    if self.epochs < 1 or self.width < 1 or self.eval_batch_size < 1:
      raise ConfigError('--epochs, --width and --eval_batch_size must be >= 1')
    if not 0 < self.min_scale <= self.max_scale <= 1:
      raise ConfigError(f'--min_scale={self.min_scale}, --max_scale={self.max_scale}: need '
                        '0 < min_scale <= max_scale <= 1')
    if not 0 < self.eval_crop_ratio <= 1:
      raise ConfigError(f'--eval_crop_ratio={self.eval_crop_ratio}: must be in (0, 1]')
    if self.warmup_epochs < 0 or self.lr <= 0 or self.lr_reference_batch < 1:
      raise ConfigError('--warmup_epochs must be >= 0, --lr > 0 and --lr_reference_batch >= 1')
    if self.schedule == 'step' and len(self.decay_factors) not in (1, len(self.decay_epochs)):
      raise ConfigError(f'--decay_factors has {len(self.decay_factors)} values for '
                        f'{len(self.decay_epochs)} --decay_epochs; give one or one each')
    if self.bn_impl not in BN_IMPLS:
      raise ConfigError(f'--bn_impl={self.bn_impl!r}: expected one of {", ".join(BN_IMPLS)}')
    if self.pool_impl not in STEM_POOLS:
      raise ConfigError(f'--pool_impl={self.pool_impl!r}: expected one of {", ".join(STEM_POOLS)}')
    if self.ghost_batch_size < 0:
      raise ConfigError('--ghost_batch_size must be >= 0 (0 = BatchNorm over the global batch)')
    parse_stages(self.stages, self.epochs, self.min_scale)


@dataclasses.dataclass(frozen=True)
class StageSpec:
  start_epoch: int
  size: int
  batch_size: int
  min_scale: float


def parse_stages(specs: Sequence[str], epochs: int, default_min_scale: float) -> tuple[StageSpec, ...]:
  """'0:128:4096:0.35', '14:224:1792' ... -> StageSpecs; ConfigError naming the bad entry."""
  stages = []
  for spec in specs:
    parts = str(spec).strip().split(':')
    try:
      if len(parts) not in (3, 4):
        raise ValueError
      start, size, batch = int(parts[0]), int(parts[1]), int(parts[2])
      min_scale = float(parts[3]) if len(parts) == 4 else default_min_scale
    except ValueError:
      raise ConfigError(f'--stages entry {spec!r}: expected start_epoch:image_size:global_batch'
                        '[:min_scale], e.g. 0:128:1024 or 0:128:1024:0.35') from None
    if size < 16 or batch < 1 or not 0 < min_scale <= 1:
      raise ConfigError(f'--stages entry {spec!r}: need image_size >= 16, global_batch >= 1 and '
                        '0 < min_scale <= 1')
    stages.append(StageSpec(start, size, batch, min_scale))
  if not stages or stages[0].start_epoch != 0:
    raise ConfigError(f'--stages={",".join(map(str, specs))}: the first stage must start at epoch 0')
  starts = [s.start_epoch for s in stages]
  if any(b <= a for a, b in zip(starts, starts[1:])) or starts[-1] >= epochs:
    raise ConfigError(f'--stages start epochs {starts} must increase and stay below --epochs={epochs}')
  return tuple(stages)


@dataclasses.dataclass(frozen=True)
class Stage:
  """A stage of the run as executed: epochs [start_epoch, end_epoch), steps from start_step."""
  start_epoch: int
  end_epoch: int
  size: int
  batch_size: int
  min_scale: float
  steps_per_epoch: int
  start_step: int

  @property
  def num_steps(self) -> int:
    return (self.end_epoch - self.start_epoch) * self.steps_per_epoch


def plan_stages(specs: Sequence[StageSpec], epochs: int, num_train: int) -> tuple[Stage, ...]:
  out, step = [], 0
  for i, s in enumerate(specs):
    end = specs[i + 1].start_epoch if i + 1 < len(specs) else epochs
    spe = num_train // s.batch_size  # the last partial batch of an epoch is dropped
    if spe < 1:
      raise ConfigError(f'stage {s.start_epoch}:{s.size}:{s.batch_size}: the global batch exceeds '
                        f'the {num_train} training images')
    out.append(Stage(s.start_epoch, end, s.size, s.batch_size, s.min_scale, spe, step))
    step += (end - s.start_epoch) * spe
  return tuple(out)


def stage_at(stages: Sequence[Stage], epoch: int) -> Stage:
  return [s for s in stages if s.start_epoch <= epoch][-1]


def lr_factor(recipe: ImageNetRecipe, epoch, xp=jnp):
  """The schedule's multiplier of the peak at fractional `epoch`; xp=jnp traces, xp=np runs on
  the host (for logging between timed epochs without queuing device work)."""
  r = recipe
  e = xp.asarray(epoch, xp.float32)
  w = r.warmup_epochs
  warm = r.warmup_start + (1.0 - r.warmup_start) * e / max(w, 1e-9)
  t = xp.clip((e - w) / max(r.epochs - w, 1e-9), 0.0, 1.0)
  if r.schedule == 'cosine':
    decay = r.end_lr_factor + (1 - r.end_lr_factor) * 0.5 * (1 + xp.cos(xp.pi * t))
  elif r.schedule == 'polynomial':
    decay = r.end_lr_factor + (1 - r.end_lr_factor) * (1 - t)**r.poly_power
  else:
    factors = list(r.decay_factors) * (len(r.decay_epochs) if len(r.decay_factors) == 1 else 1)
    decay = xp.ones_like(e)
    for at, f in zip(r.decay_epochs, factors):
      decay = decay * xp.where(e >= at, f, 1.0)
  return xp.where(e < w, warm, decay)


def learning_rate_fn(recipe: ImageNetRecipe, stages: Sequence[Stage]) -> Callable[[Any], jax.Array]:
  """step -> learning rate: the stage's batch-scaled peak times lr_factor(fractional epoch)."""
  table = lambda values: np.asarray(values, np.float32)
  starts = table([s.start_step for s in stages])
  first_epochs = table([s.start_epoch for s in stages])
  spe = table([s.steps_per_epoch for s in stages])
  peaks = table([recipe.lr * s.batch_size / recipe.lr_reference_batch for s in stages])

  def fn(step):
    # Tiny constant tables indexed by the stage; float32 counts steps exactly up to 2^24.
    starts_, first_, spe_, peaks_ = map(jnp.asarray, (starts, first_epochs, spe, peaks))
    step = jnp.asarray(step, jnp.float32)
    i = jnp.sum(step >= starts_[1:]).astype(jnp.int32)
    epoch = first_[i] + (step - starts_[i]) / spe_[i]
    return peaks_[i] * lr_factor(recipe, epoch)

  return fn


def decay_mask(params: Any) -> Any:
  """True for conv/dense kernels: no weight decay (nor LARS scaling) on BatchNorm or biases."""
  return jax.tree_util.tree_map_with_path(lambda path, _: path[-1].key == 'kernel', params)


def make_optimizer(recipe: ImageNetRecipe, lr_fn: Callable) -> optax.GradientTransformation:
  r = recipe
  if r.optimizer == 'lars':
    # MLPerf's LARS: layer-wise trust ratio and decay on kernels only; momentum after scaling.
    return optax.lars(lr_fn, weight_decay=r.weight_decay, weight_decay_mask=decay_mask,
                      trust_coefficient=r.lars_trust_coefficient, eps=r.lars_eps,
                      trust_ratio_mask=decay_mask, momentum=r.momentum, nesterov=r.nesterov)
  # torch.optim.SGD order: decay added to the gradient, momentum, then the (scheduled) lr.
  return optax.chain(optax.add_decayed_weights(r.weight_decay, mask=decay_mask),
                     optax.trace(decay=r.momentum, nesterov=r.nesterov),
                     optax.scale_by_learning_rate(lr_fn))


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


def model_from_recipe(recipe: ImageNetRecipe, num_classes: int):
  r = recipe
  return create_resnet(
      r.model, num_classes=num_classes, num_filters=r.width, dtype=jnp.dtype(r.dtype),
      bn_momentum=r.bn_momentum, bn_epsilon=r.bn_epsilon, ghost_batch_size=r.ghost_batch_size or None,
      space_to_depth_stem=r.space_to_depth, zero_init_residual=r.zero_init_residual, bn_impl=r.bn_impl,
      pool_impl=r.pool_impl)


def make_init_fn(model, tx: optax.GradientTransformation, recipe: ImageNetRecipe):
  """seed -> TrainState."""
  dtype = jnp.dtype(recipe.dtype)

  def init_fn(seed):
    # Parameter shapes do not depend on the image size; the forward pass is dead code here.
    n = recipe.ghost_batch_size or 2
    # 'rbg' (XLA's RngBitGenerator): threefry's unrolled hash costs seconds of compile time per
    # parameter tensor on CPU (a ResNet-18 init: 42 s vs 7 s), and init is its only use here.
    key = jax.random.key(seed, impl='rbg')
    variables = model.init(key, jnp.zeros((n, 32, 32, 3), dtype), train=True)
    params, stats = variables['params'], variables['batch_stats']
    return TrainState(jnp.zeros([], jnp.int32), params, stats, tx.init(params))

  return init_fn


def make_train_step(model, tx: optax.GradientTransformation, recipe: ImageNetRecipe,
                    num_classes: int):
  """(state, loss_sum, uint8 images, labels, flips) -> (state, loss_sum + this batch's mean loss).

  Mirroring and normalisation happen here, on device, fused by XLA into the first conv's input.
  """
  dtype = jnp.dtype(recipe.dtype)

  def train_step(state: TrainState, loss_sum, images, labels, flips):
    x = augment.normalize(augment.flip_lr(images, flips), IMAGENET_MEAN, IMAGENET_STD, dtype)
    targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), recipe.label_smoothing)

    def loss_fn(params):
      logits, new_vars = model.apply({'params': params, 'batch_stats': state.batch_stats}, x,
                                     train=True, mutable=['batch_stats'])
      return optax.softmax_cross_entropy(logits, targets).mean(), new_vars['batch_stats']

    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return TrainState(state.step + 1, params, batch_stats, opt_state), loss_sum + loss

  return train_step


def make_eval_step(model, recipe: ImageNetRecipe, num_classes: int):
  """(params, batch_stats, counts, uint8 images, labels) -> counts + [top-1 hits, top-5 hits]."""
  dtype = jnp.dtype(recipe.dtype)
  top_k = min(5, num_classes)

  def eval_step(params, batch_stats, counts, images, labels):
    x = augment.normalize(images, IMAGENET_MEAN, IMAGENET_STD, dtype)
    logits = model.apply({'params': params, 'batch_stats': batch_stats}, x, train=False)
    _, top = jax.lax.top_k(logits, top_k)
    hit = top == labels[:, None]  # padding rows have label -1: never a hit
    return counts + jnp.stack([jnp.sum(hit[:, 0]), jnp.sum(jnp.any(hit, axis=1))]).astype(jnp.int32)

  return eval_step


def inference_apply(recipe: ImageNetRecipe, num_classes: int, *, fold_batchnorm: bool = False):
  """apply_fn(variables, uint8 NHWC images) -> logits: normalised on device, one pass.

  `variables` are the trained ones either way. With fold_batchnorm each BatchNorm is folded into the
  convolution before it inside the served function (resnet.fold_batchnorm), so that XLA runs conv + shift
  (+ residual) + ReLU as one cuDNN call: the same function up to rounding."""
  model = model_from_recipe(recipe, num_classes).clone(folded_batchnorm=fold_batchnorm)
  dtype = jnp.dtype(recipe.dtype)

  def apply_fn(variables, images_u8):
    if fold_batchnorm:
      variables = fold_batchnorm_variables(variables, recipe.bn_epsilon)
    return model.apply(variables, augment.normalize(images_u8, IMAGENET_MEAN, IMAGENET_STD, dtype),
                       train=False)

  return apply_fn


def inference_apply_from_config(config: Mapping[str, Any], *, fold_batchnorm: bool = False):
  """Rebuilds the served apply_fn from model.json's `model_config` (the recipe + num_classes)."""
  config = dict(config)
  num_classes = int(config.pop('num_classes_resolved'))
  fields = {f.name for f in dataclasses.fields(ImageNetRecipe)}
  values = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in fields}
  return inference_apply(ImageNetRecipe(**values), num_classes, fold_batchnorm=fold_batchnorm)


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where the images come from and how they are fed."""
  dataset: str = 'auto'  # 'auto' (tfds if the dir holds it, else tree), 'tree', 'tfds', 'synthetic'
  data_dir: str | None = None
  num_workers: int = 0  # decoding processes (0: decode on the loader thread)
  prefetch: int = 2  # batches kept on device ahead of the step
  slots: int = 3  # batches decoding at once on the host
  buffer_dir: str | None = None  # shared batch buffers (default: /dev/shm if it has room)
  train_subset: int | None = None  # a fixed random sample of the train split (tests, debugging)
  eval_subset: int | None = None
  synthetic_train_examples: int = 1281167
  synthetic_eval_examples: int = 50000
  synthetic_classes: int = 1000


class ImageNetWorkload(Workload):
  task = 'imagenet'

  def __init__(self, recipe: ImageNetRecipe, mesh: Mesh, data: DataConfig, *,
               target: float | None = None, target_metric: str = 'top5Accuracy'):
    recipe.validate()
    if data.dataset not in ('auto', 'tree', 'tfds', 'synthetic'):
      raise ConfigError(f"--dataset={data.dataset!r}: expected 'auto', 'tree', 'tfds' or 'synthetic'")
    if data.dataset != 'synthetic' and not data.data_dir:
      raise ConfigError('--data_dir is required unless --dataset=synthetic')
    if target_metric not in DEFAULT_THRESHOLDS:
      raise ConfigError(f'--target_metric={target_metric!r}: expected one of {sorted(DEFAULT_THRESHOLDS)}')
    self.recipe = recipe
    self.mesh = mesh
    self.data = data
    self._threshold = DEFAULT_THRESHOLDS[target_metric] if target is None else target
    self._target_metric = target_metric
    self.specs = parse_stages(recipe.stages, recipe.epochs, recipe.min_scale)
    n_dev = mesh.devices.size
    self.num_hosts = jax.process_count()
    self.host = jax.process_index()
    for s in self.specs:
      parallel.check_divisible(s.batch_size, mesh, f'--stages batch {s.batch_size}')
      if s.batch_size % self.num_hosts:
        raise ConfigError(f'--stages batch {s.batch_size} is not divisible by {self.num_hosts} hosts')
      k = recipe.ghost_batch_size
      if k and (s.batch_size // n_dev) % k:
        raise ConfigError(f'--ghost_batch_size={k} must divide the per-device batch '
                          f'{s.batch_size // n_dev} of stage {s.start_epoch}:{s.size}:{s.batch_size}')
      if recipe.space_to_depth and s.size % 2:
        raise ConfigError(f'--space_to_depth needs even image sizes, got {s.size}')
    parallel.check_divisible(recipe.eval_batch_size, mesh, '--eval_batch_size')
    if recipe.eval_batch_size % self.num_hosts:
      raise ConfigError(f'--eval_batch_size is not divisible by {self.num_hosts} hosts')
    self.dataset_name = SYNTHETIC_NAME if data.dataset == 'synthetic' else 'imagenet'
    self.model_name = f'{recipe.model}' + (f'-w{recipe.width}' if recipe.width != 64 else '')
    self._loader: pipeline_lib.HostLoader | None = None
    self.train_stats = pipeline_lib.PipelineStats()
    self.eval_stats = pipeline_lib.PipelineStats()
    self._seed = 0
    self._last_epoch = 0

  @property
  def target(self) -> Target:
    return Target(self._target_metric, self._threshold)

  # ---------------------------------------------------------------- data
  def load_data(self) -> None:
    d = self.data
    self.source = ''
    if d.dataset == 'synthetic':
      num_train, num_eval, classes = d.synthetic_train_examples, d.synthetic_eval_examples, d.synthetic_classes
      self.source = 'device-resident random uint8 batches, generated once per (size, batch)'
      self.train_ids = np.arange(num_train)
      self.eval_ids = np.arange(num_eval)
    else:
      opened = sources.open_dataset(d.dataset, d.data_dir, scratch_dir=d.buffer_dir)
      self.source = opened.source
      reader, name, classes = opened.reader, opened.name, opened.num_classes
      num_train, num_eval = opened.num_train, opened.num_val
      self.dataset_name = name
      rng = np.random.default_rng(0)
      # Subsets are fixed random samples (sorted): a prefix of a class-sorted tree is one class.
      self.train_ids = np.arange(num_train)
      if d.train_subset:
        self.train_ids = np.sort(rng.permutation(num_train)[:d.train_subset])
      self.eval_ids = opened.val_ids()
      if d.eval_subset:
        self.eval_ids = np.sort(num_train + rng.permutation(num_eval)[:d.eval_subset])
      if d.train_subset or d.eval_subset:
        self.dataset_name += '_subset'
      self._loader = pipeline_lib.HostLoader(reader, num_workers=d.num_workers, slots=d.slots,
                                             buffer_dir=d.buffer_dir)
      self._loader.start()
    self.num_train, self.num_eval = len(self.train_ids), len(self.eval_ids)
    self.num_classes = self.recipe.num_classes or classes
    if self.num_eval < 1:
      raise ConfigError('the validation split is empty')
    self.stages = plan_stages(self.specs, self.recipe.epochs, self.num_train)
    self._build_programs()
    if d.dataset == 'synthetic':
      self._make_synthetic_batches()

  def close(self) -> None:
    """Stops the decoding processes (also done at exit)."""
    if self._loader is not None:
      self._loader.close()

  # ---------------------------------------------------------------- schedule
  @property
  def num_epochs(self) -> int:
    return self.recipe.epochs

  def train_examples(self, epoch: int) -> int:
    s = stage_at(self.stages, epoch)
    return s.steps_per_epoch * s.batch_size

  def train_steps(self, epoch: int) -> int:
    return stage_at(self.stages, epoch).steps_per_epoch

  def eval_examples(self) -> int:
    return self.num_eval

  def eval_size(self, epoch: int) -> int:
    return self.recipe.eval_size or stage_at(self.stages, epoch).size

  # ---------------------------------------------------------------- programs
  def _build_programs(self) -> None:
    r = self.recipe
    self.model = model_from_recipe(r, self.num_classes)
    self.lr_fn = learning_rate_fn(r, self.stages)
    tx = make_optimizer(r, self.lr_fn)
    rep = parallel.replicated(self.mesh)
    split = parallel.batch_sharded(self.mesh)
    init_fn = make_init_fn(self.model, tx, r)
    train_step = make_train_step(self.model, tx, r, self.num_classes)
    eval_step = make_eval_step(self.model, r, self.num_classes)
    self._init_fn = jax.jit(init_fn, out_shardings=rep)
    self._train_fn = jax.jit(train_step, in_shardings=(rep, rep, split, split, split),
                             out_shardings=(rep, rep), donate_argnums=(0, 1))
    self._eval_fn = jax.jit(eval_step, in_shardings=(rep, rep, rep, split, split),
                            out_shardings=rep, donate_argnums=(2,))
    self._split = split
    self._rep = rep

  def _shapes(self, batch: int, size: int):
    u8 = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.uint8, sharding=self._split)
    labels = jax.ShapeDtypeStruct((batch,), jnp.int32, sharding=self._split)
    flips = jax.ShapeDtypeStruct((batch,), jnp.bool_, sharding=self._split)
    return u8, labels, flips

  def compile(self, *, epoch_evals: bool = True) -> FlopCounts:
    del epoch_evals  # one evaluation program serves the per-epoch and the final evaluation
    seed = jax.ShapeDtypeStruct((), jnp.uint32)
    self._init_c = self._init_fn.lower(seed).compile()
    state = jax.eval_shape(self._init_fn, seed)
    state = jax.tree_util.tree_map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=self._rep), state)
    scalar = jax.ShapeDtypeStruct((), jnp.float32, sharding=self._rep)
    self._train_c, train_flops = {}, {}
    for s in self.stages:
      key = (s.size, s.batch_size)
      if key not in self._train_c:
        args = (state, scalar, *self._shapes(*key[::-1]))
        self._train_c[key] = self._train_fn.lower(*args).compile()
        train_flops[key] = flops_lib.count_flops(self._train_fn, *args) / s.batch_size
    counts = jax.ShapeDtypeStruct((2,), jnp.int32, sharding=self._rep)
    self._eval_c, eval_flops = {}, {}
    eb = self.recipe.eval_batch_size
    for size in sorted({self.eval_size(e) for e in range(self.num_epochs)}):
      images, labels, _ = self._shapes(eb, size)
      args = (state.params, state.batch_stats, counts, images, labels)
      self._eval_c[size] = self._eval_fn.lower(*args).compile()
      eval_flops[size] = flops_lib.count_flops(self._eval_fn, *args) / eb
    return self._flop_counts(train_flops, eval_flops)

  def _flop_counts(self, train_flops, eval_flops) -> FlopCounts:
    """Model FLOPs per example (conv + matmul, from the jaxpr: XLA's cost analysis misses cuDNN
    convolutions), the training figure weighted by each stage's share of examples."""
    total, flops = 0, 0.0
    for s in self.stages:
      examples = s.num_steps * s.batch_size
      flops += train_flops[(s.size, s.batch_size)] * examples
      total += examples
    final_eval = eval_flops[self.eval_size(self.num_epochs - 1)]
    return FlopCounts(train_per_example=flops / max(total, 1), eval_per_example=final_eval)

  # ---------------------------------------------------------------- batches
  def _transfer(self, global_rows: int):
    platform = self.mesh.devices.flat[0].platform
    return pipeline_lib.make_transfer(
        self._split, self._split, copy_first=platform == 'cpu',
        global_rows=global_rows if self.num_hosts > 1 else None)

  def _make_synthetic_batches(self) -> None:
    """One random batch per (size, batch) and per eval size, resident on device."""

    def generate(key, batch, size, classes, valid):
      k1, k2, k3 = jax.random.split(key, 3)
      images = jax.random.bits(k1, (batch, size, size, 3), jnp.uint8)
      labels = jax.random.randint(k2, (batch,), 0, classes, jnp.int32)
      labels = jnp.where(jnp.arange(batch) < valid, labels, -1)
      flips = jax.random.bernoulli(k3, 0.5, (batch,))
      return images, labels, flips

    self._synthetic = {}
    key = jax.random.key(0, impl='rbg')  # fast to compile (see make_init_fn)
    for i, s in enumerate(self.stages):
      fn = jax.jit(generate, static_argnums=(1, 2, 3, 4), out_shardings=self._split)
      self._synthetic[('train', s.size, s.batch_size)] = fn(
          jax.random.fold_in(key, i), s.batch_size, s.size, self.num_classes, s.batch_size)
    eb = self.recipe.eval_batch_size
    last = self.num_eval - (math.ceil(self.num_eval / eb) - 1) * eb
    for size in self._eval_c_sizes():
      fn = jax.jit(generate, static_argnums=(1, 2, 3, 4), out_shardings=self._split)
      for valid in {eb, last}:
        self._synthetic[('eval', size, valid)] = fn(jax.random.fold_in(key, 1000 + size), eb, size,
                                                    self.num_classes, valid)[:2]

  def _eval_c_sizes(self):
    return sorted({self.eval_size(e) for e in range(self.num_epochs)})

  def _train_batches(self, stage: Stage, epoch: int):
    if self.data.dataset == 'synthetic':
      batch = self._synthetic[('train', stage.size, stage.batch_size)]
      return (batch for _ in range(stage.steps_per_epoch))
    scale = (stage.min_scale, max(stage.min_scale, self.recipe.max_scale))
    crop = Crop(stage.size, train=True, scale=scale)
    requests = pipeline_lib.train_requests(self.train_ids, stage.batch_size, crop, self._seed, epoch,
                                           process_index=self.host, process_count=self.num_hosts)
    return self._loader.iterate(requests, self._transfer(stage.batch_size), prefetch=self.data.prefetch,
                                stats=self.train_stats)

  def _eval_batches(self, size: int):
    eb = self.recipe.eval_batch_size
    steps = math.ceil(self.num_eval / eb)
    if self.data.dataset == 'synthetic':
      last = self.num_eval - (steps - 1) * eb
      return (self._synthetic[('eval', size, eb if i < steps - 1 else last)] for i in range(steps))
    crop = Crop(size, train=False, crop_ratio=self.recipe.eval_crop_ratio)
    requests = pipeline_lib.eval_requests(self.eval_ids, eb, crop, process_index=self.host,
                                          process_count=self.num_hosts)
    batches = self._loader.iterate(requests, self._transfer(eb), prefetch=self.data.prefetch,
                                   stats=self.eval_stats)
    return (b[:2] for b in batches)

  # ---------------------------------------------------------------- run
  def init(self, seed: int) -> TrainState:
    self._seed = seed
    return self._init_c(np.uint32(seed))

  def train_epoch(self, state: TrainState, epoch: int) -> tuple[TrainState, Mapping[str, Any]]:
    stage = stage_at(self.stages, epoch)
    step = self._train_c[(stage.size, stage.batch_size)]
    loss_sum = jax.device_put(np.float32(0), self._rep)
    for images, labels, flips in self._train_batches(stage, epoch):
      state, loss_sum = step(state, loss_sum, images, labels, flips)  # asynchronous dispatch
    self._last_epoch = epoch
    return state, {'train_loss': loss_sum / stage.steps_per_epoch}

  def evaluate(self, state: TrainState, *, final: bool) -> dict[str, float]:
    del final  # one protocol: single centre crop, every validation image
    size = self.eval_size(self._last_epoch)
    step = self._eval_c[size]
    counts = jax.device_put(np.zeros(2, np.int32), self._rep)
    for images, labels in self._eval_batches(size):
      counts = step(state.params, state.batch_stats, counts, images, labels)
    top1, top5 = (int(c) for c in np.asarray(counts))
    return {'top1Accuracy': 100.0 * top1 / self.num_eval, 'top5Accuracy': 100.0 * top5 / self.num_eval}

  def schedule_scalars(self, epoch: int) -> dict[str, float]:
    """The learning rate at the end of `epoch`, computed on the host (numpy)."""
    stage = stage_at(self.stages, epoch)
    factor = float(lr_factor(self.recipe, epoch + 1, xp=np))
    peak = self.recipe.lr * stage.batch_size / self.recipe.lr_reference_batch
    return {'schedule/learning_rate': peak * factor, 'schedule/lr_factor': factor,
            'schedule/image_size': float(stage.size), 'schedule/global_batch': float(stage.batch_size)}

  def inference_model(self, state: TrainState):
    variables = {'params': state.params, 'batch_stats': state.batch_stats}
    size = self.eval_size(self.num_epochs - 1)
    info = {
        'task': self.task, 'dataset': self.dataset_name, 'model': self.model_name,
        'model_config': {**dataclasses.asdict(self.recipe), 'num_classes_resolved': self.num_classes},
        'input': {'shape': [size, size, 3], 'dtype': 'uint8',
                  'preprocessing': f'resize shorter side to {int(size / self.recipe.eval_crop_ratio)}, '
                                   f'centre crop {size} (client side); normalised on device'},
        'target': {'metric': self.target.metric, 'threshold': self.target.threshold},
        'protocol': 'single centre crop, one pass',
    }
    return inference_apply(self.recipe, self.num_classes), variables, info

  def describe(self) -> dict[str, Any]:
    workers = self.data.num_workers if self._loader is not None else 0
    return {
        'recipe': dataclasses.asdict(self.recipe),
        'data': dataclasses.asdict(self.data),
        'source': getattr(self, 'source', ''),
        'num_train': getattr(self, 'num_train', None),
        'num_eval': getattr(self, 'num_eval', None),
        'num_classes': getattr(self, 'num_classes', None),
        'stages': [dataclasses.asdict(s) for s in getattr(self, 'stages', ())],
        'host_pipeline': {'train': self.train_stats.as_dict(workers),
                          'eval': self.eval_stats.as_dict(workers)},
        'per_epoch_eval': f'single centre crop (ratio {self.recipe.eval_crop_ratio}), all '
                          f'{getattr(self, "num_eval", "?")} validation images, untimed',
        'final_eval': 'the same protocol, timed',
    }
