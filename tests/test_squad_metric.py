"""dawnjax.squad.metric against a line-by-line copy of the official evaluate-v1.1.py."""
import collections
import random
import re
import string

import numpy as np
import pytest

from dawnjax.squad import metric


# --- Reference: the official SQuAD v1.1 evaluation script's definitions, unchanged. ---------------
def ref_normalize_answer(s):
  def remove_articles(text):
    return re.sub(r'\b(a|an|the)\b', ' ', text)

  def white_space_fix(text):
    return ' '.join(text.split())

  def remove_punc(text):
    exclude = set(string.punctuation)
    return ''.join(ch for ch in text if ch not in exclude)

  def lower(text):
    return text.lower()

  return white_space_fix(remove_articles(remove_punc(lower(s))))


def ref_f1_score(prediction, ground_truth):
  prediction_tokens = ref_normalize_answer(prediction).split()
  ground_truth_tokens = ref_normalize_answer(ground_truth).split()
  common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
  num_same = sum(common.values())
  if num_same == 0:
    return 0
  precision = 1.0 * num_same / len(prediction_tokens)
  recall = 1.0 * num_same / len(ground_truth_tokens)
  f1 = (2 * precision * recall) / (precision + recall)
  return f1


def ref_exact_match_score(prediction, ground_truth):
  return ref_normalize_answer(prediction) == ref_normalize_answer(ground_truth)


def ref_metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
  scores_for_ground_truths = []
  for ground_truth in ground_truths:
    score = metric_fn(prediction, ground_truth)
    scores_for_ground_truths.append(score)
  return max(scores_for_ground_truths)


def ref_evaluate(dataset, predictions):
  f1 = exact_match = total = 0
  for article in dataset:
    for paragraph in article['paragraphs']:
      for qa in paragraph['qas']:
        total += 1
        if qa['id'] not in predictions:
          continue
        ground_truths = list(map(lambda x: x['text'], qa['answers']))
        prediction = predictions[qa['id']]
        exact_match += ref_metric_max_over_ground_truths(
            ref_exact_match_score, prediction, ground_truths)
        f1 += ref_metric_max_over_ground_truths(ref_f1_score, prediction, ground_truths)
  exact_match = 100.0 * exact_match / total
  f1 = 100.0 * f1 / total
  return {'exact_match': exact_match, 'f1': f1}
# ---------------------------------------------------------------------------------------------------

PIECES = ['the', 'The', 'THE', 'a', 'A', 'an', 'An', 'and', 'theater', 'another', 'anA', 'a-ha',
          'the-end', "the'", 'a.', '.a', 'Denver', 'Broncos', 'broncos', '1990s', '3.14', '$5',
          'café', 'CAFÉ', 'naïve', 'İstanbul', 'Straße', 'STRASSE', 'ǅ', 'Ωmega', 'θ', '東京',
          '—', '–', '“quoted”', '‘s', "'s", '...', '!', '?', ',', '(', ')', '"', '#', '_', '€',
          '¿', '·', 'x', 'y', 'z', '']
SPACES = [' ', ' ', ' ', '  ', '\t', '\n', '\u00a0', '\u2003', '\u3000', '', '-', '/']
TRICKY = [
    ('', ''), ('', 'x'), ('x', ''), ('the', 'a'), ('The', ''), ('...', '!!'), ('a an the', ''),
    ('Denver Broncos', 'the Denver Broncos'), ('Broncos Denver', 'Denver Broncos'),
    ('the the the', 'the'), ('x x x', 'x'), ('x', 'x x x'), ('café', 'CAFÉ'), ('naïve', 'naive'),
    ('İstanbul', 'i̇stanbul'), ('Straße', 'STRASSE'), ('a\u00a0b', 'a b'), ('theater', 'ater'),
    ('another', 'other'), ('a-ha', 'aha'), ('the-end', 'theend'), ('3.14', '314'),
    ('“quoted”', 'quoted'), ("Luther's", 'luthers'), ('東京 タワー', '東京'), ('ǅ', 'ǆ'),
]


def random_text(rng):
  n = rng.choice([0, 1, 1, 2, 3, 4, 6, 10])
  return ''.join(rng.choice(PIECES) + rng.choice(SPACES) for _ in range(n))


def dataset_from(cases):
  """(prediction or None, [golds]) pairs -> (SQuAD dataset list, predictions dict)."""
  qas, preds = [], {}
  for i, (pred, golds) in enumerate(cases):
    qas.append({'id': f'q{i}', 'answers': [{'text': g} for g in golds]})
    if pred is not None:
      preds[f'q{i}'] = pred
  return [{'paragraphs': [{'qas': qas}]}], preds


def test_normalize_answer_matches_official():
  rng = random.Random(0)
  texts = [t for case in TRICKY for t in case] + [random_text(rng) for _ in range(3000)]
  for t in texts:
    assert metric.normalize_answer(t) == ref_normalize_answer(t), repr(t)


def test_per_question_scores_match_official_exactly():
  rng = random.Random(1)
  cases = [(p, [g]) for p, g in TRICKY] + [(g, [p]) for p, g in TRICKY]
  for _ in range(5000):
    golds = [random_text(rng) for _ in range(rng.randint(1, 5))]
    pred = rng.choice(golds) if rng.random() < 0.2 else random_text(rng)
    cases.append((pred, golds))
  em, f1 = metric.question_scores([p for p, _ in cases], [g for _, g in cases])
  for (pred, golds), e, f in zip(cases, em, f1):
    assert e == float(ref_metric_max_over_ground_truths(ref_exact_match_score, pred, golds))
    assert f == ref_metric_max_over_ground_truths(ref_f1_score, pred, golds), (pred, golds)
  assert 0 < em.mean() < 1 and 0 < f1.mean() < 1  # the random cases exercise both outcomes


@pytest.mark.parametrize('seed', [2, 3])
def test_corpus_scores_match_official(seed):
  rng = random.Random(seed)
  cases = []
  for _ in range(2000):
    golds = [random_text(rng) for _ in range(rng.randint(1, 3))]
    pred = None if rng.random() < 0.05 else random_text(rng)
    cases.append((pred, golds))
  dataset, preds = dataset_from(cases)
  want = ref_evaluate(dataset, preds)
  got = metric.squad_v1_scores(preds, [(f'q{i}', g) for i, (_, g) in enumerate(cases)])
  assert got.exact_match == want['exact_match'] and got.f1 == want['f1']
  assert got.f1_fraction == pytest.approx(want['f1'] / 100)
  assert got.total == len(cases) and got.missing == sum(p is None for p, _ in cases)


def test_known_values():
  # Worked examples: partial overlap, articles/punctuation ignored, v1.1's empty-vs-empty F1 of 0.
  em, f1 = metric.question_scores(
      ['Denver Broncos', 'the Broncos!', 'Broncos', '', 'Carolina'],
      [['Denver Broncos'], ['Broncos'], ['Denver Broncos', 'The Broncos'], [''], ['Panthers']])
  np.testing.assert_array_equal(em, [1, 1, 1, 1, 0])
  np.testing.assert_allclose(f1, [1, 1, 1, 0, 0])
  _, f1 = metric.question_scores(['Denver'], [['Denver Broncos']])
  assert f1[0] == pytest.approx(2 / 3)
