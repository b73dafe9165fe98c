"""Best-span decoding: on device per window, then on host to text, best window per question."""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dawnjax.squad.data import SquadExample
from dawnjax.squad.features import SquadFeatures


@functools.partial(jax.jit, static_argnames='max_answer_len')
def best_spans(start_logits: jax.Array, end_logits: jax.Array, start_mask: jax.Array,
               end_mask: jax.Array, max_answer_len: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """argmax of start_logit[i] + end_logit[j] over i <= j < i + max_answer_len, per row.

  Inputs are (batch, seq); masks mark legal starts/ends. Only the band of width max_answer_len
  is scored, (batch, seq, max_answer_len), not all seq^2 pairs. Returns (score, start, end);
  score is -inf for rows with no legal span.
  """
  b, s = start_logits.shape
  neg = jnp.asarray(-jnp.inf, jnp.float32)
  start = jnp.where(start_mask, start_logits.astype(jnp.float32), neg)
  end = jnp.where(end_mask, end_logits.astype(jnp.float32), neg)
  # end_band[:, i, k] = end[:, i + k], -inf past the sequence end.
  padded = jnp.concatenate([end, jnp.full((b, max_answer_len), neg)], axis=1)
  idx = jnp.arange(s)[:, None] + jnp.arange(max_answer_len)[None, :]
  scores = start[:, :, None] + padded[:, idx]
  flat = scores.reshape(b, -1)
  best = jnp.argmax(flat, axis=1)
  i, k = best // max_answer_len, best % max_answer_len
  return jnp.take_along_axis(flat, best[:, None], axis=1)[:, 0], i, i + k


def spans_to_text(examples: Sequence[SquadExample], feats: SquadFeatures, score: np.ndarray,
                  start: np.ndarray, end: np.ndarray) -> list[str | None]:
  """Per example, the context substring of its best-scoring window's span (None if no window)."""
  score = np.asarray(score, np.float64)[:len(feats)]
  start, end = np.asarray(start)[:len(feats)], np.asarray(end)[:len(feats)]
  ex = feats.example_index
  # Sort by (example, -score): the first row of each example is its best window.
  order = np.lexsort((-score, ex))
  first = order[np.r_[True, ex[order][1:] != ex[order][:-1]]] if len(order) else order
  rows = np.arange(len(first))
  c0 = feats.char_start[first, start[first]]
  c1 = feats.char_end[first, end[first]]
  valid = np.isfinite(score[first]) & (c0 >= 0) & (c1 >= 0)
  texts: list[str | None] = [None] * len(examples)
  for r, f in zip(rows, first):
    if valid[r]:
      texts[ex[f]] = examples[ex[f]].context[c0[r]:c1[r]]
  return texts
