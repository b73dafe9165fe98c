"""CIFAR-10 time-to-accuracy: airbench-family net, whole dataset resident on device as uint8.

One epoch is one compiled program (a `fori_loop` over steps with a traced trip count, so every
epoch, the partial last one too, reuses one executable). Data order, flips and crops are pure
functions of (seed, epoch, step), which makes runs reproducible and resumable.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
from typing import Any, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from dawnjax import augment, flops, optim, parallel
from dawnjax.data.arrays import ImageClassificationData
from dawnjax.errors import ConfigError
from dawnjax.models.airbench import AirbenchConfig, AirbenchNet, whitening_kernel
from dawnjax.workloads.base import FlopCounts, Target, Workload
# The recipe lives apart (importable without Flax); re-exported here, where users look for it.
from dawnjax.workloads.cifar10_recipe import CifarRecipe, recipe_from_config

# Official CIFAR-10: DAWNBench's 94% top-1. cifar10_jpeg (lossy JPEG copy): 90.5%, the mean the
# fastest published 94%-recipes reach on it (../shared/anchors/README.md).
DEFAULT_TARGETS = {'cifar10': 94.0, 'cifar10_jpeg': 90.5}


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  ema_params: Any  # lookahead copy (airbench94); None when unused
  ema_stats: Any
  key: jax.Array  # the seed's key; every random draw folds in (epoch, step)


def _param_label(path, _) -> str:
  names = [getattr(k, 'key', str(k)) for k in path]
  if names[0] == 'whiten':
    return 'whiten_kernel' if names[-1] == 'kernel' else 'whiten_bias'
  if any(n.startswith('norm') for n in names):
    return 'norm_bias'
  if names[0] == 'head':
    return 'head'
  return 'filters'


def build_model(recipe: CifarRecipe, mesh: Mesh | None = None) -> AirbenchNet:
  """The recipe's network (no data needed: the whitening weights are variables, set by init); `mesh`:
  the data-parallel mesh its training batches are sharded over."""
  logit_scale = recipe.logit_scale
  if logit_scale is None:
    logit_scale = 1.0 / 9.0 if recipe.optimizer == 'sgd' else 1.0 / recipe.widths[-1]
  return AirbenchNet(AirbenchConfig(
      widths=tuple(recipe.widths), bn_momentum=recipe.bn_momentum, logit_scale=logit_scale,
      dtype=recipe.dtype, gelu_approximate=recipe.gelu_approximate, pool_impl=recipe.pool_impl,
      activation=recipe.activation, bn_impl=recipe.bn_impl, whiten_impl=recipe.whiten_impl,
      block1_conv1_impl=recipe.block1_conv1_impl, whiten_fast_tanh=recipe.whiten_fast_tanh), mesh=mesh)


def model_name(recipe: CifarRecipe) -> str:
  return f"airbench{'-muon' if recipe.optimizer == 'muon' else ''}-" + '-'.join(map(str, recipe.widths))


def tta_view_list(x: jax.Array, tta_level: int, weighting: str = 'airbench') -> tuple[list[jax.Array], list[float]]:
  """The final evaluation's test-time augmentation: (views, their weights in the logit average).

  Level 1: the image and its mirror. Level 2 adds the one-pixel up-left and down-right translations,
  each mirrored. 'airbench' weights 1/2 for the untranslated pair, 1/4 for each translated pair
  (airbench94); 'equal' averages the 6 views (hiverge cifar10-speedrun). The one definition behind
  the timed evaluation (one forward pass per view) and the served model (views in one batch).
  """
  if tta_level == 0:
    return [x], [1.0]
  n = x.shape[0]
  shifted = [x]
  if tta_level >= 2:
    shifted += [augment.translate(x, jnp.full((n, 2), -1), 1), augment.translate(x, jnp.full((n, 2), 1), 1)]
  views = [v for s in shifted for v in (s, s[:, :, ::-1, :])]
  if weighting == 'equal' or tta_level == 1:
    return views, [1.0 / len(views)] * len(views)
  return views, [0.25, 0.25] + [0.125] * 4


def tta_views(x: jax.Array, tta_level: int, weighting: str = 'airbench') -> tuple[jax.Array, jax.Array]:
  """(views stacked on the batch axis, their weights): a served request is one forward pass."""
  views, weights = tta_view_list(x, tta_level, weighting)
  return jnp.concatenate(views), jnp.asarray(weights, jnp.float32)


def inference_apply(recipe: CifarRecipe):
  """apply_fn(variables, uint8 NHWC images) -> logits: normalise on device, then the recipe's
  test-time augmentation (tta_level), the same protocol as the timed final evaluation."""
  model = build_model(recipe)
  dtype = jnp.dtype(recipe.dtype)

  def apply_fn(variables, images_u8):
    views, weights = tta_views(augment.normalize(images_u8, dtype=dtype), recipe.tta_level,
                               recipe.tta_weighting)
    logits = model.apply(variables, views, train=False).astype(jnp.float32)
    logits = logits.reshape(len(weights), images_u8.shape[0], -1)
    return jnp.einsum('v,vnc->nc', weights, logits)

  return apply_fn


def inference_apply_from_config(config: dict[str, Any]):
  """Rebuilds the served apply_fn from model.json's `model_config`, without data."""
  return inference_apply(recipe_from_config(config))


class Cifar10Workload(Workload):
  task = 'cifar10'

  def __init__(self, recipe: CifarRecipe, mesh: Mesh, *, data_loader, target: float | None = None,
               train_subset: int | None = None, test_subset: int | None = None, warm_up: bool = False,
               overlap_upload: bool = False):
    """`data_loader()` returns ImageClassificationData; it runs inside `load_data` (timed).
    `overlap_upload`: load_data leaves the upload to the devices running on a thread while the programs
    compile or load; the loop waits for it (wait_for_data) before the first execution."""
    recipe.validate()
    parallel.check_divisible(recipe.batch_size, mesh)
    parallel.check_divisible(recipe.eval_batch_size, mesh, '--eval_batch_size')
    self.recipe = recipe
    self.mesh = mesh
    self._data_loader = data_loader
    self._target_override = target
    self._train_subset = train_subset
    self._test_subset = test_subset
    # Entry points turn it on (--warm_up): ~0.25 s on an H100, so seed 0 skips first-execution costs.
    self._warm_up = warm_up
    self._overlap_upload = overlap_upload
    self._upload: concurrent.futures.Future | None = None
    self.dataset_name = 'cifar10'
    self.model = build_model(recipe, mesh)
    self.model_name = model_name(recipe)

  # ---------------------------------------------------------------- data
  def load_data(self) -> None:
    data: ImageClassificationData = self._data_loader()
    self.dataset_name = data.name
    self.classes = data.classes
    train_x, train_y = data.train_images, data.train_labels
    test_x, test_y = data.test_images, data.test_labels
    # Subsets are a fixed random sample: the files are sorted by class, so a prefix is one class.
    if self._train_subset:
      keep = np.sort(np.random.default_rng(0).permutation(len(train_x))[:self._train_subset])
      train_x, train_y = train_x[keep], train_y[keep]
    if self._test_subset:
      keep = np.sort(np.random.default_rng(1).permutation(len(test_x))[:self._test_subset])
      test_x, test_y = test_x[keep], test_y[keep]
    self.num_train = len(train_x)
    self.num_test = len(test_x)
    if self.num_train < self.recipe.batch_size:
      raise ConfigError(f'--batch_size={self.recipe.batch_size} exceeds the {self.num_train} training images')
    # The test set is padded to whole eval batches; padded rows are masked out of the count.
    ebs = self.recipe.eval_batch_size
    padded = math.ceil(self.num_test / ebs) * ebs
    pad = padded - self.num_test
    test_x = np.concatenate([np.asarray(test_x), np.zeros((pad,) + test_x.shape[1:], np.uint8)])
    test_y = np.concatenate([np.asarray(test_y, np.int32), np.full((pad,), -1, np.int32)])
    # uint8 on device: 4x less memory and transfer than float, and the cast fuses into the step.
    host = (np.asarray(train_x, np.uint8), np.asarray(train_y, np.int32), test_x, test_y)
    # What compiling the programs needs of the arrays, known before they are on the devices.
    rep = parallel.replicated(self.mesh)
    self._array_structs = [jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=rep) for a in host]
    upload = functools.partial(parallel.put_replicated, host, self.mesh)
    if self._overlap_upload:
      pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix='upload')
      self._upload = pool.submit(upload)
      pool.shutdown(wait=False)  # returns at once; the upload runs on
    else:
      self._set_arrays(upload())
    self._build_programs()

  def _set_arrays(self, arrays) -> None:
    self.train_images, self.train_labels, self.test_images, self.test_labels = arrays

  def wait_for_data(self) -> None:
    if self._upload is not None:
      upload, self._upload = self._upload, None
      self._set_arrays(upload.result())

  @property
  def target(self) -> Target:
    threshold = self._target_override
    if threshold is None:
      threshold = DEFAULT_TARGETS.get(self.dataset_name, 94.0)
    return Target('top1Accuracy', threshold)

  # ---------------------------------------------------------------- schedule
  @property
  def steps_per_epoch(self) -> int:
    return self.num_train // self.recipe.batch_size  # drop_last, as airbench

  @property
  def total_steps(self) -> int:
    return math.ceil(self.steps_per_epoch * self.recipe.epochs)

  @property
  def num_epochs(self) -> int:
    return math.ceil(self.total_steps / self.steps_per_epoch)

  @property
  def whiten_bias_steps(self) -> int:
    return math.ceil(self.recipe.whiten_bias_epochs * self.steps_per_epoch)

  def steps_in_epoch(self, epoch: int) -> int:
    return max(0, min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch))

  def train_examples(self, epoch: int) -> int:
    return self.steps_in_epoch(epoch) * self.recipe.batch_size

  def train_steps(self, epoch: int) -> int:
    return self.steps_in_epoch(epoch)

  def eval_examples(self) -> int:
    return self.num_test

  def selective_tta_images(self, tta_level: int) -> int | None:
    """How many test images get the TTA views under --tta_fraction; None when all of them do."""
    if tta_level == 0 or self.recipe.tta_fraction >= 1.0:
      return None
    return max(1, math.ceil(self.recipe.tta_fraction * self.num_test))

  # ---------------------------------------------------------------- optimizer
  def _optimizer(self) -> optax.GradientTransformation:
    r = self.recipe
    total = self.total_steps
    whiten_steps = self.whiten_bias_steps
    if r.optimizer == 'sgd':
      # airbench94: divide by the Nesterov gain so lr/wd are per-example step sizes.
      kilostep_scale = 1024 * (1 + 1 / (1 - r.momentum))
      lr = r.lr / kilostep_scale
      wd = r.weight_decay * r.batch_size / kilostep_scale
      lr_bias = lr * r.bias_scaler
      sched = optim.airbench_sgd_schedule(total)
      other = optim.torch_sgd(lr, r.momentum, wd / lr, sched)
      txs = {
          'filters': other,
          'head': other,
          'whiten_bias': optax.chain(optim.torch_sgd(lr, r.momentum, wd / lr, sched),
                                     optim.freeze_after(whiten_steps)),
          'norm_bias': optim.torch_sgd(lr_bias, r.momentum, wd / lr_bias, sched),
      }
    else:
      wd = r.muon_weight_decay * r.batch_size
      decay = optim.linear_decay(total)
      txs = {
          'filters': optim.muon(r.muon_lr, r.muon_momentum, decay, r.ns_steps, ns_dtype=jnp.dtype(r.dtype),
                                ns_coefficients=r.ns_coefficients, norm_every=r.muon_norm_every,
                                weight_decay=r.muon_filter_weight_decay * r.batch_size),
          'head': optim.torch_sgd(r.head_lr, r.sgd_momentum, wd / r.head_lr, decay),
          'whiten_bias': optax.chain(
              optim.torch_sgd(r.bias_lr, r.sgd_momentum, wd / r.bias_lr, optim.linear_decay(whiten_steps)),
              optim.freeze_after(whiten_steps)),
          'norm_bias': optim.torch_sgd(r.bias_lr, r.sgd_momentum, wd / r.bias_lr, decay),
      }
    # With the whitening trick the first layer is fixed; without it, it trains like any filter.
    txs['whiten_kernel'] = optax.set_to_zero() if r.whiten else txs['filters']
    return optax.multi_transform(
        txs, lambda params: jax.tree_util.tree_map_with_path(_param_label, params))

  # ---------------------------------------------------------------- programs
  def _build_programs(self) -> None:
    fns = self._program_functions(self.model)
    rep = parallel.replicated(self.mesh)
    self._init_fn = jax.jit(fns['init'], out_shardings=rep)
    self._epoch_fn = jax.jit(fns['epoch'], out_shardings=rep, donate_argnums=0, static_argnames='whiten_trainable')
    self._train_step, self._logits_fn, self._augmented_batch = fns['train_step'], fns['logits'], fns['augmented_batch']
    self._eval_fns = {level: jax.jit(functools.partial(fns['eval'], tta_level=level), out_shardings=rep)
                      for level in {0, self.recipe.tta_level}}

  def _program_functions(self, model) -> dict[str, Any]:
    """The un-jitted functions of the programs, for `model` (the recipe's, or the nn.Conv reference
    whose FLOPs _flop_counts counts)."""
    r = self.recipe
    tx = self._optimizer()
    dtype = jnp.dtype(r.dtype)
    n_train = self.num_train
    bs = r.batch_size
    spe = self.steps_per_epoch
    total = self.total_steps
    split = parallel.batch_sharded(self.mesh)

    def init_fn(seed, train_images):
      key = jax.random.PRNGKey(seed)
      dummy = jnp.zeros((2,) + train_images.shape[1:], dtype)
      variables = model.init(jax.random.fold_in(key, 0), dummy, train=True)
      params, batch_stats = variables['params'], variables['batch_stats']
      if r.whiten:
        sample = augment.normalize(train_images[:r.whiten_images], dtype=jnp.float32)
        kernel = whitening_kernel(sample, params['whiten']['kernel'].shape[0])
        params = flax.core.copy(params, {'whiten': {'kernel': kernel, 'bias': params['whiten']['bias']}})
      if r.head_unit_std:
        head = params['head']['kernel']
        params = flax.core.copy(params, {'head': {'kernel': head / jnp.std(head)}})
      ema_p, ema_s = (params, batch_stats) if r.lookahead else (None, None)
      return TrainState(jnp.zeros([], jnp.int32), params, batch_stats, tx.init(params), ema_p, ema_s, key)

    def loss_fn(params, batch_stats, x, y):
      logits, new_vars = model.apply({'params': params, 'batch_stats': batch_stats}, x, train=True,
                                     mutable=['batch_stats'])
      labels = optax.smooth_labels(jax.nn.one_hot(y, logits.shape[-1]), r.label_smoothing)
      # Summed, not averaged, over the batch: the recipes' learning rates are per example.
      loss = optax.softmax_cross_entropy(logits, labels).sum()
      return loss, (new_vars['batch_stats'], loss)

    def grads_fn(params, batch_stats, x, y, whiten_trainable):
      if not r.whiten:
        return jax.grad(loss_fn, has_aux=True)(params, batch_stats, x, y)
      # What never trains is a constant to autodiff, so its gradients are not in the program: the
      # whitening kernel's filter gradient always, and once the bias is frozen also block1's input
      # gradient (the largest convolution backward) and the bias reduction.
      const = {k: v for k, v in params['whiten'].items() if k == 'kernel' or not whiten_trainable}
      var = {**params, 'whiten': {k: v for k, v in params['whiten'].items() if k not in const}}
      grads, aux = jax.grad(lambda p, *a: loss_fn({**p, 'whiten': {**p['whiten'], **const}}, *a),
                            has_aux=True)(var, batch_stats, x, y)
      zeros = jax.tree_util.tree_map(jnp.zeros_like, const)
      return {**grads, 'whiten': {**grads['whiten'], **zeros}}, aux

    def train_step(st: TrainState, x, y, whiten_trainable: bool = True) -> TrainState:
      grads, (batch_stats, loss) = grads_fn(st.params, st.batch_stats, x, y, whiten_trainable)
      updates, opt_state = tx.update(grads, st.opt_state, st.params)
      params = optax.apply_updates(st.params, updates)
      step = st.step + 1
      ema_p, ema_s = st.ema_params, st.ema_stats
      if r.lookahead:
        # airbench94's lookahead: every 5 steps pull an EMA towards the weights, then reset the
        # weights to it; the EMA's memory grows as (step/total)^3. Final step: weights = EMA.
        decay = 0.95**5 * (step / total)**3
        sync = (step % 5 == 0) | (step == total)
        lerp = lambda e, p: jnp.where(sync, e + (1 - decay) * (p - e), e)
        ema_p = jax.tree_util.tree_map(lerp, ema_p, params)
        ema_s = jax.tree_util.tree_map(lerp, ema_s, batch_stats)
        pick = lambda e, p: jnp.where(sync, e, p)
        params = jax.tree_util.tree_map(pick, ema_p, params)
        batch_stats = jax.tree_util.tree_map(pick, ema_s, batch_stats)
      return st.replace(step=step, params=params, batch_stats=batch_stats, opt_state=opt_state,
                        ema_params=ema_p, ema_stats=ema_s), loss

    def augmented_batch(images, labels, idx, flips, key):
      x = images[idx]
      if r.flip != 'none':
        x = augment.flip_lr(x, flips[idx])
      k_shift, k_cut = jax.random.split(key)
      x = augment.translate(x, augment.random_shifts(k_shift, bs, r.translate), r.translate)
      jitter = r.brightness > 0 or r.contrast > 0
      x = augment.normalize(x, dtype=jnp.float32 if jitter else dtype)
      if jitter:
        x = augment.color_jitter(x, augment.random_jitter(jax.random.fold_in(key, 2), bs),
                                 r.brightness, r.contrast).astype(dtype)
      if r.cutout:
        corners = augment.random_cutout_corners(k_cut, bs, x.shape[1], x.shape[2], r.cutout)
        x = augment.cutout(x, corners, r.cutout)
      return jax.lax.with_sharding_constraint(x, split), labels[idx]

    def epoch_fn(st: TrainState, images, labels, epoch, steps, whiten_trainable):
      """Steps [steps[0], steps[1]) of `epoch`; the loss is summed over the epoch's steps."""
      ekey = jax.random.fold_in(st.key, epoch + 1)
      perm = jax.random.permutation(jax.random.fold_in(ekey, 0), n_train)
      if r.flip == 'alternating':
        base = jax.random.bernoulli(jax.random.fold_in(st.key, 0x5EED), 0.5, (n_train,))
        flips = augment.alternating_flip(base, epoch)
      else:
        flips = jax.random.bernoulli(jax.random.fold_in(ekey, 1), 0.5, (n_train,))
      n_steps = jnp.clip(total - epoch * spe, 0, spe)

      def body(i, carry):
        st, loss_sum = carry
        idx = jax.lax.with_sharding_constraint(jax.lax.dynamic_slice(perm, (i * bs,), (bs,)), split)
        x, y = augmented_batch(images, labels, idx, flips, jax.random.fold_in(ekey, i + 2))
        st, loss = train_step(st, x, y, whiten_trainable)
        return st, loss_sum + loss

      lo, hi = steps[0], jnp.minimum(steps[1], n_steps)
      carry = (st, jnp.zeros([], jnp.float32))
      if r.loop_chunk > 1 and self.longest_segment(whiten_trainable) >= r.loop_chunk:
        # XLA runs a while loop whose trip count it knows without copying the predicate to the host and
        # waiting for it after each iteration (an idle gap of ~50 us per step on an H200): whole chunks run
        # as such an inner loop, one host round trip each; the leftover steps below one each. A program
        # whose pieces are all shorter than a chunk keeps the plain loop: the step compiled once, not twice.
        k = r.loop_chunk
        chunks = jnp.maximum(hi - lo, 0) // k
        chunk = lambda c, carry: jax.lax.fori_loop(0, k, lambda j, cr: body(lo + c * k + j, cr), carry)
        carry = jax.lax.fori_loop(0, chunks, chunk, carry)
        lo = lo + chunks * k
      st, loss_sum = jax.lax.fori_loop(lo, hi, body, carry)
      return st, {'train_loss': loss_sum / jnp.maximum(n_steps * bs, 1)}

    def logits_fn(params, batch_stats, x, tta_level):
      net = lambda v: model.apply({'params': params, 'batch_stats': batch_stats}, v, train=False)
      views, weights = tta_view_list(x, tta_level, r.tta_weighting)
      # One forward pass per view (the batch shape of training), summed with the views' weights.
      return functools.reduce(jnp.add, [w * net(v) for v, w in zip(views, weights)])

    def eval_fn(params, batch_stats, images, labels, tta_level):
      ebs = r.eval_batch_size
      chunked = lambda a: a.reshape((-1, ebs) + a.shape[1:])

      def chunk_logits(level):
        def fn(x):
          x = jax.lax.with_sharding_constraint(augment.normalize(x, dtype=dtype), split)
          return logits_fn(params, batch_stats, x, level).astype(jnp.float32)
        return fn

      def count(logits):
        return jnp.sum((jnp.argmax(logits, -1) == labels) & (labels >= 0))

      selected = self.selective_tta_images(tta_level)
      if selected is None:
        def chunk(args):
          x, y = args
          pred = jnp.argmax(chunk_logits(tta_level)(x), -1)
          return jnp.sum((pred == y) & (y >= 0))
        return jnp.sum(jax.lax.map(chunk, (chunked(images), chunked(labels))))
      # Plain pass over everything, then the full TTA views only for the least confident images
      # (padding rows rank as most confident, so they are never picked).
      logits = jax.lax.map(chunk_logits(0), chunked(images)).reshape(labels.shape[0], -1)
      confidence = jnp.where(labels >= 0, jnp.max(jax.nn.softmax(logits), -1), jnp.inf)
      _, idx = jax.lax.top_k(-confidence, selected)
      padded_idx = jnp.pad(idx, (0, -selected % ebs), mode='edge')
      tta = jax.lax.map(chunk_logits(tta_level), chunked(images[padded_idx])).reshape(padded_idx.shape[0], -1)
      return count(logits.at[idx].set(tta[:selected]))

    return {'init': init_fn, 'epoch': epoch_fn, 'train_step': train_step, 'logits': logits_fn,
            'augmented_batch': augmented_batch, 'eval': eval_fn}

  def compile(self, *, epoch_evals: bool = True) -> FlopCounts:
    """Compiles every program on worker threads, each as soon as this thread has lowered it.

    The epoch programs autotune their (shared) convolution shapes side by side instead of the
    later ones waiting for the first's results. Measured on an H200 (results/cifar10_jpeg/
    h200_2026-12-02_s15, ABBA over 2x20 seeds): timed the same (0.8014 / 0.8020 s against
    0.8010 / 0.7996 s), cold compile 14.6-15.2 s against 16.1-21.2 s.
    """
    seed = jax.ShapeDtypeStruct((), jnp.uint32)
    rep = parallel.replicated(self.mesh)
    # The arrays' shapes and shardings, not the arrays: their upload may still be running (overlap_upload).
    train_images, train_labels, test_images, test_labels = self._array_structs
    state = jax.eval_shape(self._init_fn, seed, train_images)
    state = jax.tree_util.tree_map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=rep), state)
    epoch, steps = jax.ShapeDtypeStruct((), jnp.int32), jax.ShapeDtypeStruct((2,), jnp.int32)
    variants = sorted({v for e in range(self.num_epochs) for v, _, _ in self.epoch_segments(e)}, reverse=True)
    lower_epoch = lambda v: self._epoch_fn.lower(state, train_images, train_labels, epoch, steps,
                                                 whiten_trainable=v)
    # The plain (level 0) program serves only the per-epoch evaluations unless the final one is plain.
    levels = sorted({self.recipe.tta_level} | ({0} if epoch_evals else set()))
    with concurrent.futures.ThreadPoolExecutor(1 + len(variants) + len(levels)) as pool:
      init = pool.submit(self._init_fn.lower(seed, train_images).compile)
      epochs = {v: pool.submit(lower_epoch(v).compile) for v in variants}
      evals = {level: pool.submit(self._eval_fns[level].lower(state.params, state.batch_stats, test_images,
                                                              test_labels).compile) for level in levels}
      flop_counts = self._flop_counts(state, variants)
      self._init_c = init.result()
      self._epoch_c = {v: c.result() for v, c in epochs.items()}
      self._eval_c = {level: c.result() for level, c in evals.items()}
    return flop_counts

  def program_fingerprint(self, *, epoch_evals: bool = True) -> dict[str, Any] | None:
    if jax.process_count() > 1:
      return None  # untested across hosts: every host would have to hit the same entry
    # The programs close over the recipe and the data's sizes (steps, padding, selective TTA
    # counts) and take the arrays as arguments: their shapes, dtypes and the mesh complete it.
    return {'workload': type(self).__name__, 'recipe': dataclasses.asdict(self.recipe), 'epoch_evals': epoch_evals,
            'num_train': self.num_train, 'num_test': self.num_test,
            'arrays': [(a.shape, str(a.dtype), str(a.sharding)) for a in self._array_structs],
            'mesh': (dict(self.mesh.shape), [d.id for d in self.mesh.devices.flat])}

  def compiled_programs(self) -> dict[str, Any]:
    return {'init': self._init_c,
            **{f'epoch/whiten_trainable={v}': c for v, c in self._epoch_c.items()},
            **{f'eval/tta_level={level}': c for level, c in self._eval_c.items()}}

  def restore_programs(self, programs: dict[str, Any]) -> None:
    self._init_c = programs['init']
    self._epoch_c = {name.endswith('True'): c for name, c in programs.items() if name.startswith('epoch/')}
    self._eval_c = {int(name.rsplit('=', 1)[1]): c for name, c in programs.items() if name.startswith('eval/')}

  def _flop_counts(self, state, variants: Sequence[bool]) -> FlopCounts:
    """Per-example model FLOPs (convs + matmuls) of one train step and one TTA eval forward."""
    bs, ebs = self.recipe.batch_size, self.recipe.eval_batch_size
    dtype = jnp.dtype(self.recipe.dtype)
    x = jax.ShapeDtypeStruct((bs, 32, 32, 3), dtype)
    y = jax.ShapeDtypeStruct((bs,), jnp.int32)
    xe = jax.ShapeDtypeStruct((ebs, 32, 32, 3), dtype)
    # Model FLOPs are the architecture's: an implementation of block1's conv that pads its channels
    # (or runs a Pallas kernel, which the jaxpr counter cannot see into) is counted as nn.Conv.
    if self.recipe.block1_conv1_impl == 'conv':
      train_step, logits_fn = self._train_step, self._logits_fn
    else:
      reference = self._program_functions(build_model(dataclasses.replace(self.recipe, block1_conv1_impl='conv')))
      train_step, logits_fn = reference['train_step'], reference['logits']
    per_image = lambda level: flops.count_flops(functools.partial(logits_fn, tta_level=level),
                                                state.params, state.batch_stats, xe) / ebs
    level = self.recipe.tta_level
    selected = self.selective_tta_images(level)
    if selected is None:
      eval_per_example = per_image(level)
    else:  # a plain pass over every image, the views over the selected (padded to whole batches)
      eval_per_example = per_image(0) + per_image(level) * (-(-selected // ebs) * ebs) / self.num_test
    # Model FLOPs as executed: steps that prune the frozen layer's gradients do less work.
    per_variant = {v: flops.count_flops(functools.partial(train_step, whiten_trainable=v), state, x, y) / bs
                   for v in variants}
    steps = {v: sum(hi - lo for e in range(self.num_epochs) for w, lo, hi in self.epoch_segments(e) if w == v)
             for v in per_variant}
    train = sum(per_variant[v] * steps[v] for v in per_variant) / max(sum(steps.values()), 1)
    return FlopCounts(train_per_example=train, eval_per_example=eval_per_example)

  # ---------------------------------------------------------------- run
  def warm_up(self) -> None:
    if not self._warm_up:
      return
    # A seed no run uses; the state is discarded. The first epoch that runs each epoch program +
    # the compiled evaluations touch every program. (Two steps per program were tried: on an H100
    # after a cold compile, seed 0's first epoch then took 0.12 s longer; whole epochs do not.)
    state, pending = self.init(2**31 - 1), set(self._epoch_c)
    for epoch in range(self.num_epochs):
      programs = {v for v, _, _ in self.epoch_segments(epoch)}
      if programs & pending:
        state, _ = self.train_epoch(state, epoch)
        pending -= programs
    for final in (False, True):
      if self._eval_level(final) in self._eval_c:
        self.evaluate(state, final=final)

  def init(self, seed: int) -> TrainState:
    return self._init_c(np.uint32(seed), self.train_images)

  def longest_segment(self, whiten_trainable: bool) -> int:
    """The most steps one dispatch of that epoch program runs (epoch_segments), 0 if it never runs."""
    return max((hi - lo for e in range(self.num_epochs) for v, lo, hi in self.epoch_segments(e)
                if v == whiten_trainable), default=0)

  def epoch_segments(self, epoch: int) -> tuple[tuple[bool, int, int], ...]:
    """The (whiten_trainable, first step, end step) pieces that run `epoch`, in order: with
    --prune_frozen_grads the program that differentiates the whitening bias runs only its steps."""
    r, n = self.recipe, self.steps_in_epoch(epoch)
    if not (r.whiten and r.prune_frozen_grads):
      return ((True, 0, n),)
    split = min(max(self.whiten_bias_steps - epoch * self.steps_per_epoch, 0), n)
    return tuple(seg for seg in ((True, 0, split), (False, split, n)) if seg[2] > seg[1])

  def train_epoch(self, state: TrainState, epoch: int):
    # Consecutive dispatches, no host sync in between; the pieces' losses add up to the epoch's mean.
    scalars = None
    for trainable, lo, hi in self.epoch_segments(epoch):
      state, piece = self._epoch_c[trainable](state, self.train_images, self.train_labels, np.int32(epoch),
                                              np.array([lo, hi], np.int32))
      scalars = piece if scalars is None else jax.tree_util.tree_map(jnp.add, scalars, piece)
    return state, scalars

  def _eval_level(self, final: bool) -> int:
    return self.recipe.tta_level if final else 0

  def evaluate(self, state: TrainState, *, final: bool) -> dict[str, float]:
    level = self._eval_level(final)
    if level not in self._eval_c:
      raise ConfigError('the per-epoch evaluation was not compiled: compile(epoch_evals=False) '
                        '(--noeval_every_epoch) promised it would not run')
    correct = self._eval_c[level](state.params, state.batch_stats, self.test_images, self.test_labels)
    return {'top1Accuracy': 100.0 * float(correct) / self.num_test}

  def schedule_scalars(self, epoch: int) -> dict[str, float]:
    # The optimizer's own schedule functions, evaluated on the host CPU backend so that no work
    # is queued on the accelerator between timed epochs.
    r = self.recipe
    total = self.total_steps
    step = min((epoch + 1) * self.steps_per_epoch, total)
    if r.optimizer == 'sgd':
      schedule, base = optim.airbench_sgd_schedule(total), r.lr / (1024 * (1 + 1 / (1 - r.momentum)))
    else:
      schedule, base = optim.linear_decay(total), r.muon_lr
    with jax.default_device(jax.local_devices(backend='cpu')[0]):
      mult = float(schedule(step))
    return {'schedule/lr_multiplier': mult, 'schedule/lr_filters': base * mult}

  def inference_model(self, state: TrainState):
    # After the last step the lookahead weights are the EMA (train_step), so params are final.
    variables = {'params': state.params, 'batch_stats': state.batch_stats}
    info = {
        'task': self.task, 'dataset': self.dataset_name, 'model': self.model_name,
        'model_config': dataclasses.asdict(self.recipe),
        'input': {'shape': list(self.test_images.shape[1:]), 'dtype': 'uint8',
                  'preprocessing': 'normalised on device (dawnjax.augment.normalize)'},
        'target': {'metric': self.target.metric, 'threshold': self.target.threshold},
        'protocol': (f'tta_level={self.recipe.tta_level}: the final evaluation\'s test-time augmentation, '
                     'its views batched into one forward pass per request'
                     + (f'; every request gets the views (the timed evaluation\'s --tta_fraction='
                        f'{self.recipe.tta_fraction} ranks confidence over the whole test set, which a '
                        'single request cannot)' if self.recipe.tta_fraction < 1.0 else '')),
    }
    return inference_apply(self.recipe), variables, info

  def describe(self) -> dict[str, Any]:
    selected = self.selective_tta_images(self.recipe.tta_level)
    return {
        'recipe': dataclasses.asdict(self.recipe),
        'num_train': self.num_train,
        'num_test': self.num_test,
        'steps_per_epoch': self.steps_per_epoch,
        'total_steps': self.total_steps,
        'per_epoch_eval': 'no test-time augmentation (untimed)',
        'final_eval': f'tta_level={self.recipe.tta_level} (timed)' + (
            f' on the {selected} least confident test images, one plain pass on the rest' if selected else ''),
    }
