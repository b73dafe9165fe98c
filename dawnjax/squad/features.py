"""WordPiece features for extractive QA: sliding windows, token->character offsets, span labels.

Each question becomes one or more fixed-length features `[CLS] question [SEP] context-window
[SEP] [PAD]...`; long contexts are covered by windows `doc_stride` tokens apart (BERT's recipe).
Questions and unique contexts are tokenised once, in batch, by the Rust `tokenizers` library,
and all windows are then assembled with whole-array numpy indexing, chunked to bound memory:
there is no per-token Python loop, so the ~100k SQuAD questions take seconds.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Sequence

import numpy as np

from dawnjax.errors import ConfigError, DataError
from dawnjax.squad.data import SquadExample

#: Features assembled per numpy pass (bounds temporaries to ~chunk * max_seq_len elements).
_CHUNK = 4096


def load_tokenizer(model_dir: str, lowercase: bool | None = None) -> Any:
  """A `tokenizers` WordPiece tokenizer from a Hugging Face-layout directory.

  `tokenizer.json` wins when present (its normalizer already knows the casing); otherwise
  `vocab.txt` goes through `BertWordPieceTokenizer`, lower-casing when `lowercase` says so, or
  when `tokenizer_config.json` has do_lower_case (default True: most BERT checkpoints are uncased).
  """
  from tokenizers import Tokenizer  # pylint: disable=g-import-not-at-top
  from tokenizers.implementations import BertWordPieceTokenizer  # pylint: disable=g-import-not-at-top

  tok_json = os.path.join(model_dir, 'tokenizer.json')
  vocab = os.path.join(model_dir, 'vocab.txt')
  if os.path.isfile(tok_json):
    tok = Tokenizer.from_file(tok_json)
    # Saved tokenizers often carry padding/truncation to 128 for sentence embedding; windows
    # are built here, so both must be off.
    tok.no_truncation()
    tok.no_padding()
    return tok
  if os.path.isfile(vocab):
    if lowercase is None:
      lowercase = True
      cfg_path = os.path.join(model_dir, 'tokenizer_config.json')
      if os.path.isfile(cfg_path):
        with open(cfg_path, encoding='utf-8') as f:
          lowercase = bool(json.load(f).get('do_lower_case', True))
    return BertWordPieceTokenizer(vocab, lowercase=lowercase)
  raise DataError(f'{model_dir}: neither tokenizer.json nor vocab.txt found; the tokenizer '
                  'directory (--pretrained_dir / --tokenizer_dir) must hold one.')


def _special_id(tokenizer: Any, token: str) -> int:
  idx = tokenizer.token_to_id(token)
  if idx is None:
    raise DataError(f'tokenizer vocabulary lacks {token}; a BERT WordPiece vocabulary is required.')
  return int(idx)


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
  max_seq_len: int = 384
  doc_stride: int = 128
  max_query_len: int = 64


@dataclasses.dataclass
class SquadFeatures:
  """Row f is one window of question `example_index[f]`; all 2-D arrays are (features, seq)."""
  input_ids: np.ndarray  # int32
  token_type_ids: np.ndarray  # int32: 0 for [CLS] question [SEP] and padding, 1 for context [SEP]
  attention_mask: np.ndarray  # bool
  context_mask: np.ndarray  # bool: context tokens, the only legal answer boundaries
  max_context_mask: np.ndarray  # bool: context tokens whose widest-context window is this one
  char_start: np.ndarray  # int32 character offsets into the context, -1 outside it
  char_end: np.ndarray  # int32, exclusive
  example_index: np.ndarray  # (features,) int32
  start_positions: np.ndarray  # (features,) int32, 0 ([CLS]) when the answer is outside the window
  end_positions: np.ndarray  # (features,) int32
  unaligned: int = 0  # training answers that fall between tokens (e.g. whitespace), labelled [CLS]

  def __len__(self) -> int:
    return self.input_ids.shape[0]

  def model_inputs(self, idx: Any = slice(None)) -> dict[str, np.ndarray]:
    return {'input_ids': self.input_ids[idx], 'token_type_ids': self.token_type_ids[idx],
            'attention_mask': self.attention_mask[idx], 'context_mask': self.context_mask[idx]}


def _flatten(encodings: Sequence[Any], limit: int | None = None):
  """Concatenated ids, char starts/ends and per-sequence lengths/offsets of a batch encoding."""
  ids = [np.asarray(e.ids, np.int32)[:limit] for e in encodings]
  offs = [np.asarray(e.offsets, np.int32).reshape(-1, 2)[:limit] for e in encodings]
  lens = np.array([len(x) for x in ids], np.int32)
  starts = np.zeros(len(ids) + 1, np.int64)
  np.cumsum(lens, out=starts[1:])
  cat = lambda xs, shape: np.concatenate(xs) if xs else np.zeros(shape, np.int32)
  offsets = cat(offs, (0, 2))
  return cat(ids, (0,)), offsets[:, 0], offsets[:, 1], lens, starts[:-1]


def _answer_tokens(examples, ctx_of, c_start, c_end, c_len, c_off, contexts):
  """Per example: first/last context-token index (relative) of answer 0, or -1 if unaligned."""
  # Offsets of all unique contexts are laid end to end (with a 1-char gap) so one searchsorted
  # call over the concatenation finds every answer's tokens at once.
  base = np.zeros(len(contexts) + 1, np.int64)
  np.cumsum([len(c) + 1 for c in contexts], out=base[1:])
  tok_ctx = np.repeat(np.arange(len(contexts)), c_len)
  g_start, g_end = c_start + base[tok_ctx], c_end + base[tok_ctx]
  has = np.array([len(ex.answers) > 0 and len(ex.answers[0]) > 0 for ex in examples], bool)
  a0 = np.array([ex.answer_starts[0] if h else 0 for ex, h in zip(examples, has)], np.int64)
  a1 = a0 + np.array([len(ex.answers[0]) if h else 0 for ex, h in zip(examples, has)], np.int64)
  b = base[ctx_of]
  first = np.searchsorted(g_end, a0 + b, side='right')  # first token ending after the start
  last = np.searchsorted(g_start, a1 + b, side='left') - 1  # last token starting before the end
  rel_first, rel_last = first - c_off[ctx_of], last - c_off[ctx_of]
  ok = has & (rel_first >= 0) & (rel_first <= rel_last) & (rel_last < c_len[ctx_of])
  return np.where(ok, rel_first, -1), np.where(ok, rel_last, -1), has & ~ok


def build_features(examples: Sequence[SquadExample], tokenizer: Any, cfg: FeatureConfig,
                   *, labels: bool = True) -> SquadFeatures:
  """Tokenises and windows `examples`. With `labels`, answer 0 gives the start/end targets."""
  cls_id, sep_id = _special_id(tokenizer, '[CLS]'), _special_id(tokenizer, '[SEP]')
  pad_id = _special_id(tokenizer, '[PAD]')
  ctx_ids: dict[str, int] = {}
  ctx_of = np.array([ctx_ids.setdefault(ex.context, len(ctx_ids)) for ex in examples], np.int64)
  contexts = list(ctx_ids)
  c_ids, c_start, c_end, c_len, c_off = _flatten(
      tokenizer.encode_batch(contexts, add_special_tokens=False))
  q_ids, _, _, q_len, q_off = _flatten(
      tokenizer.encode_batch([ex.question for ex in examples], add_special_tokens=False),
      limit=cfg.max_query_len)

  n = c_len[ctx_of].astype(np.int64)  # context tokens per example
  room = cfg.max_seq_len - q_len.astype(np.int64) - 3  # context tokens per window
  if len(examples) and room.min() < 1:
    raise ConfigError(f'max_seq_len={cfg.max_seq_len} leaves no room for context after a '
                      f'{cfg.max_query_len}-token question; raise it or lower max_query_len.')
  if cfg.doc_stride < 1:
    raise ConfigError(f'doc_stride must be positive, got {cfg.doc_stride}.')
  stride = np.minimum(cfg.doc_stride, room)  # a stride wider than a window would skip tokens
  windows = 1 + np.maximum(0, -(-(n - room) // stride))
  feat_ex = np.repeat(np.arange(len(examples)), windows)
  first_feat = np.cumsum(windows) - windows
  w_start = (np.arange(len(feat_ex)) - first_feat[feat_ex]) * stride[feat_ex]
  w_len = np.minimum(room[feat_ex], n[feat_ex] - w_start)

  if labels:
    ans_first, ans_last, unaligned = _answer_tokens(
        examples, ctx_of, c_start, c_end, c_len, c_off, contexts)
  num_f, seq = len(feat_ex), cfg.max_seq_len
  out = {k: np.zeros((num_f, seq), np.int32) for k in ('input_ids', 'token_type_ids')}
  out.update({k: np.zeros((num_f, seq), bool) for k in ('attention_mask', 'context_mask')})
  out.update({k: np.full((num_f, seq), -1, np.int32) for k in ('char_start', 'char_end')})
  pos = np.arange(seq)[None, :]
  for lo in range(0, num_f, _CHUNK):
    sl = slice(lo, min(lo + _CHUNK, num_f))
    ex = feat_ex[sl]
    ql = q_len[ex].astype(np.int64)[:, None]
    ws, wl = w_start[sl][:, None], w_len[sl][:, None]
    is_q = (pos >= 1) & (pos <= ql)
    cpos = pos - ql - 2  # position inside the window
    is_c = (cpos >= 0) & (cpos < wl)
    is_sep = (pos == ql + 1) | (pos == ql + 2 + wl)
    q_flat = np.clip(q_off[ex][:, None] + pos - 1, 0, max(len(q_ids) - 1, 0))
    c_flat = np.clip(c_off[ctx_of[ex]][:, None] + ws + cpos, 0, max(len(c_ids) - 1, 0))
    ids = np.where(is_q, q_ids[q_flat] if len(q_ids) else 0,
                   np.where(is_c, c_ids[c_flat] if len(c_ids) else 0,
                            np.where(is_sep, sep_id, pad_id)))
    ids[:, 0] = cls_id
    out['input_ids'][sl] = ids
    out['token_type_ids'][sl] = (pos >= ql + 2) & (pos <= ql + 2 + wl)
    out['attention_mask'][sl] = pos <= ql + 2 + wl
    out['context_mask'][sl] = is_c
    if len(c_ids):
      out['char_start'][sl] = np.where(is_c, c_start[c_flat], -1)
      out['char_end'][sl] = np.where(is_c, c_end[c_flat], -1)

  # A token seen in several windows is a legal answer start only in the window where it has the
  # most context on both sides (BERT's _check_is_max_context).
  rows, cols = np.nonzero(out['context_mask'])
  cpos = cols - q_len[feat_ex[rows]] - 2
  wl = w_len[rows]
  score = np.minimum(cpos, wl - 1 - cpos) + 0.01 * wl
  abs_tok = (np.cumsum(n) - n)[feat_ex[rows]] + w_start[rows] + cpos
  best = np.full(int(n.sum()), -np.inf)
  np.maximum.at(best, abs_tok, score)
  max_ctx = np.zeros_like(out['context_mask'])
  max_ctx[rows, cols] = score >= best[abs_tok]

  start_pos = np.zeros(num_f, np.int32)
  end_pos = np.zeros(num_f, np.int32)
  n_unaligned = 0
  if labels:
    f_first, f_last = ans_first[feat_ex], ans_last[feat_ex]
    inside = (f_first >= 0) & (f_first >= w_start) & (f_last < w_start + w_len)
    shift = q_len[feat_ex] + 2 - w_start
    start_pos = np.where(inside, f_first + shift, 0).astype(np.int32)
    end_pos = np.where(inside, f_last + shift, 0).astype(np.int32)
    n_unaligned = int(unaligned.sum())
  return SquadFeatures(max_context_mask=max_ctx, example_index=feat_ex.astype(np.int32),
                       start_positions=start_pos, end_positions=end_pos, unaligned=n_unaligned,
                       **out)
