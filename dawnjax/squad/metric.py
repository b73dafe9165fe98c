"""The official SQuAD v1.1 exact match and F1 (evaluate-v1.1.py), with the counting in Numba.

Split of work: `normalize_answer` stays in Python because its definition *is* Python's -- a
`re` word-boundary regex, `str.lower` and `str.split` with full Unicode semantics, none of which
Numba's string support reproduces -- and it is one C-level pass per string anyway. Normalised
tokens are then interned to integers, and the per-question work that the official script does
with `Counter` objects (multiset overlap, max over gold answers) runs in one compiled loop.
"""
from __future__ import annotations

import dataclasses
import re
import string
from typing import Iterable, Mapping, Sequence

import numba
import numpy as np

_PUNCT = str.maketrans('', '', string.punctuation)
_ARTICLES = re.compile(r'\b(a|an|the)\b')


def normalize_answer(s: str) -> str:
  """Lower text and remove punctuation, articles and extra whitespace (the official order)."""
  return ' '.join(_ARTICLES.sub(' ', s.lower().translate(_PUNCT)).split())


@numba.njit(cache=True)
def _overlap(a: np.ndarray, b: np.ndarray) -> int:
  """Size of the multiset intersection of two sorted int arrays (Counter(a) & Counter(b))."""
  i = j = n = 0
  while i < a.size and j < b.size:
    if a[i] == b[j]:
      n += 1
      i += 1
      j += 1
    elif a[i] < b[j]:
      i += 1
    else:
      j += 1
  return n


@numba.njit(cache=True)
def _scores(tokens: np.ndarray, seg_start: np.ndarray, seg_end: np.ndarray,
            pred_seg: np.ndarray, gold_lo: np.ndarray, gold_hi: np.ndarray):
  """Per question: max over its gold segments of EM and F1 against its predicted segment.

  Segments are [seg_start, seg_end) slices of `tokens`; question q's prediction is segment
  pred_seg[q] (-1: no prediction, scores 0) and its golds are segments gold_lo[q]..gold_hi[q]-1.
  """
  n_q = pred_seg.size
  em = np.zeros(n_q, np.float64)
  f1 = np.zeros(n_q, np.float64)
  for q in range(n_q):
    p = pred_seg[q]
    if p < 0:
      continue
    pred = tokens[seg_start[p]:seg_end[p]]
    pred_sorted = np.sort(pred)
    for g in range(gold_lo[q], gold_hi[q]):
      gold = tokens[seg_start[g]:seg_end[g]]
      if pred.size == gold.size and np.all(pred == gold):
        em[q] = 1.0
      same = _overlap(pred_sorted, np.sort(gold))
      if same == 0:
        continue  # the official script returns 0 here, even when both are empty
      precision = 1.0 * same / pred.size
      recall = 1.0 * same / gold.size
      score = (2 * precision * recall) / (precision + recall)
      if score > f1[q]:
        f1[q] = score
  return em, f1


@dataclasses.dataclass(frozen=True)
class SquadScores:
  """Corpus-level scores in percent, as the official script prints them."""
  exact_match: float
  f1: float
  total: int
  missing: int  # questions without a prediction (scored 0, as officially)

  @property
  def f1_fraction(self) -> float:
    return self.f1 / 100.0

  @property
  def exact_match_fraction(self) -> float:
    return self.exact_match / 100.0


def question_scores(predictions: Sequence[str | None],
                    golds: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
  """Per-question (EM, F1) as floats in [0, 1]; a None prediction scores 0."""
  if len(predictions) != len(golds):
    raise ValueError(f'{len(predictions)} predictions for {len(golds)} questions')
  vocab: dict[str, int] = {}
  tokens: list[int] = []
  bounds = [0]

  def add(text: str) -> int:
    tokens.extend(vocab.setdefault(t, len(vocab)) for t in normalize_answer(text).split())
    bounds.append(len(tokens))
    return len(bounds) - 2

  pred_seg = np.array([-1 if p is None else add(p) for p in predictions], np.int64)
  gold_lo = np.empty(len(golds), np.int64)
  gold_hi = np.empty(len(golds), np.int64)
  for q, answers in enumerate(golds):
    gold_lo[q] = len(bounds) - 1
    for a in answers:
      add(a)
    gold_hi[q] = len(bounds) - 1
  b = np.asarray(bounds, np.int64)
  return _scores(np.asarray(tokens, np.int64), b[:-1], b[1:], pred_seg, gold_lo, gold_hi)


def squad_v1_scores(predictions: Mapping[str, str],
                    gold: Iterable[tuple[str, Sequence[str]]]) -> SquadScores:
  """Official v1.1 corpus scores: `gold` yields (question id, gold answer texts)."""
  gold = list(gold)
  preds = [predictions.get(qid) for qid, _ in gold]
  em, f1 = question_scores(preds, [answers for _, answers in gold])
  total = len(gold)
  # Sums in question order, then 100 * sum / total, exactly as evaluate-v1.1.py accumulates.
  em_sum = f1_sum = 0.0
  for e, f in zip(em.tolist(), f1.tolist()):
    em_sum += e
    f1_sum += f
  return SquadScores(exact_match=100.0 * em_sum / total if total else 0.0,
                     f1=100.0 * f1_sum / total if total else 0.0, total=total,
                     missing=sum(p is None for p in preds))
