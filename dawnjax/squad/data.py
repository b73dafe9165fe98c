"""Reads SQuAD v1.1 (official JSON, or TFDS `squad`) into plain, validated records.

Every answer is checked against its context (`context[start:start+len(text)] == text`) at load
time: features are built from character offsets, so a mismatch would silently train on the
wrong span.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Iterable, Sequence

from dawnjax.errors import DataError

#: Official file names, as published on https://rajpurkar.github.io/SQuAD-explorer/.
SPLIT_FILES = {'train': 'train-v1.1.json', 'dev': 'dev-v1.1.json'}
#: TFDS calls the dev set 'validation'.
TFDS_SPLITS = {'train': 'train', 'dev': 'validation'}


@dataclasses.dataclass(frozen=True)
class SquadExample:
  """One question about one context. Train questions have one answer, dev questions up to ~5."""
  qid: str
  question: str
  context: str
  answers: tuple[str, ...]
  answer_starts: tuple[int, ...]
  title: str = ''


def _field(obj: Any, key: str, kind: type, where: str) -> Any:
  if not isinstance(obj, dict) or key not in obj:
    raise DataError(f'{where}: missing field {key!r}.')
  value = obj[key]
  if not isinstance(value, kind) or isinstance(value, bool):
    raise DataError(f'{where}: field {key!r} should be {kind.__name__}, got {type(value).__name__}.')
  return value


def _check_answers(context: str, texts: Sequence[str], starts: Sequence[int], where: str) -> None:
  for text, start in zip(texts, starts):
    if context[start:start + len(text)] != text:
      found = context[start:start + len(text)]
      raise DataError(f'{where}: answer_start {start} points at {found!r}, not at the answer '
                      f'{text!r}; the file is corrupt or not SQuAD v1.1.')


def parse_squad(obj: Any, source: str) -> list[SquadExample]:
  """Validates and flattens a decoded SQuAD v1.1 JSON object. `source` names it in errors."""
  data = _field(obj, 'data', list, source)
  examples = []
  for a, article in enumerate(data):
    title = article.get('title', '') if isinstance(article, dict) else ''
    paragraphs = _field(article, 'paragraphs', list, f'{source}: data[{a}]')
    for p, paragraph in enumerate(paragraphs):
      where = f'{source}: data[{a}].paragraphs[{p}]'
      context = _field(paragraph, 'context', str, where)
      for q, qa in enumerate(_field(paragraph, 'qas', list, where)):
        qid = qa.get('id') if isinstance(qa, dict) else None
        where_q = f'{source}: question id {qid!r}' if qid is not None else f'{where}.qas[{q}]'
        qid = _field(qa, 'id', str, where_q)
        question = _field(qa, 'question', str, where_q)
        answers = _field(qa, 'answers', list, where_q)
        texts = tuple(_field(ans, 'text', str, f'{where_q} answer') for ans in answers)
        starts = tuple(_field(ans, 'answer_start', int, f'{where_q} answer') for ans in answers)
        _check_answers(context, texts, starts, where_q)
        examples.append(SquadExample(qid, question, context, texts, starts, str(title)))
  return examples


def read_squad_json(path: str) -> list[SquadExample]:
  """Reads one SQuAD v1.1 JSON file."""
  try:
    with open(path, encoding='utf-8') as f:
      obj = json.load(f)
  except FileNotFoundError:
    raise DataError(f'{path}: no such file.') from None
  except (json.JSONDecodeError, UnicodeDecodeError) as err:
    raise DataError(f'{path}: not valid JSON ({err}).') from None
  return parse_squad(obj, path)


def _tfds_available() -> bool:
  try:
    import tensorflow_datasets  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return False
  return True


def _decode(value: Any) -> str:
  return value.decode('utf-8') if isinstance(value, bytes) else str(value)


def read_squad_tfds(split: str, data_dir: str | None = None) -> list[SquadExample]:
  """Reads TFDS `squad` (v1.1); TensorFlow is imported only here, since GPU images lack it."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  ds = tfds.load('squad', split=TFDS_SPLITS[split], data_dir=data_dir)
  examples = []
  for record in tfds.as_numpy(ds):
    qid = _decode(record['id'])
    context = _decode(record['context'])
    texts = tuple(_decode(t) for t in record['answers']['text'])
    starts = tuple(int(s) for s in record['answers']['answer_start'])
    _check_answers(context, texts, starts, f'TFDS squad/{split}: question id {qid!r}')
    examples.append(SquadExample(qid, _decode(record['question']), context, texts, starts,
                                 _decode(record['title'])))
  return examples


def find_squad(data_dir: str | None, split: str, source: str = 'auto') -> str:
  """Where `load_squad` would read `split` from ('json' or 'tfds'), without reading it.

  Raises DataError naming --data_dir when neither is there, so entry points fail in seconds.
  """
  if split not in SPLIT_FILES:
    raise ValueError(f'split must be one of {sorted(SPLIT_FILES)}, got {split!r}')
  if source not in ('auto', 'json', 'tfds'):
    raise DataError(f"SQuAD source must be 'auto', 'json' or 'tfds', got {source!r}.")
  path = os.path.join(data_dir, SPLIT_FILES[split]) if data_dir else None
  if source != 'tfds' and path and os.path.isfile(path):
    return 'json'
  if source != 'json' and _tfds_available():
    return 'tfds'
  names = ', '.join(SPLIT_FILES.values())
  where = f'--data_dir={data_dir!r}' if data_dir else '--data_dir (unset)'
  raise DataError(f'SQuAD v1.1 {split} split not found: {where} must hold the official files '
                  f'{names} (or install tensorflow-datasets for TFDS `squad`).')


def load_squad(data_dir: str | None, split: str, source: str = 'auto') -> list[SquadExample]:
  """Loads a split ('train' or 'dev') of SQuAD v1.1.

  source: 'json' reads `<data_dir>/{train,dev}-v1.1.json`; 'tfds' reads TFDS `squad`;
  'auto' prefers the JSON file and falls back to TFDS when that imports.
  """
  if find_squad(data_dir, split, source) == 'json':
    return read_squad_json(os.path.join(data_dir, SPLIT_FILES[split]))
  return read_squad_tfds(split, data_dir)


def to_squad_json(examples: Iterable[SquadExample], version: str = '1.1') -> dict[str, Any]:
  """The inverse of `parse_squad`: groups examples by title and context into the official layout."""
  articles: dict[str, dict[str, list[dict[str, Any]]]] = {}
  for ex in examples:
    qa = {'id': ex.qid, 'question': ex.question,
          'answers': [{'text': t, 'answer_start': s} for t, s in zip(ex.answers, ex.answer_starts)]}
    articles.setdefault(ex.title, {}).setdefault(ex.context, []).append(qa)
  data = [{'title': title, 'paragraphs': [{'context': c, 'qas': qas} for c, qas in paras.items()]}
          for title, paras in articles.items()]
  return {'version': version, 'data': data}
