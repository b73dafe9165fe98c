"""A synthetic, SQuAD-v1.1-format reading task (never SQuAD itself: results must say 'synthetic').

Each context lists facts "The <attribute> of <entity> is <value>." about several entities and
attributes, in shuffled order, plus filler sentences. A question names one (entity, attribute)
pair; its answer is that fact's value span. Every context holds distractors (the same attribute
of other entities, other attributes of the same entity) with distinct values, so the span can
only be found by matching both the entity and the attribute in the context: position, word
frequency or the question alone give nothing away.

`python -m dawnjax.squad.synthetic --out_dir DIR` writes synthetic-{train,dev}-v1.1.json.
"""
from __future__ import annotations

import json
import os
import random
import re
from typing import Any, Sequence

import numpy as np

from dawnjax.squad.data import SquadExample, parse_squad

VERSION = 'synthetic-squad-1.1'
FILES = {'train': 'synthetic-train-v1.1.json', 'dev': 'synthetic-dev-v1.1.json'}

ATTRIBUTES = (
    'capital', 'colour', 'founder', 'largest river', 'national animal', 'favourite food',
    'motto', 'oldest building', 'chief export', 'patron', 'ruling family', 'main language',
    'highest peak', 'currency', 'anthem', 'sacred tree', 'oldest school', 'harbour', 'emblem',
    'busiest market', 'longest road', 'winter festival', 'guardian spirit', 'rival')
_SYLLABLES = ('ka', 'lo', 'mir', 'ven', 'tor', 'sa', 'bel', 'dun', 'ri', 'an', 'os', 'qua', 'zel',
              'far', 'po', 'tis', 'gra', 'hel', 'nor', 'vi', 'mo', 'ush', 'ter', 'lin', 'ca', 'dor')
_WORDS = (
    'amber', 'stone', 'silver', 'falcon', 'garden', 'copper', 'meadow', 'lantern',
    'harvest', 'crimson', 'willow', 'thunder', 'marble', 'orchard', 'violet', 'iron', 'summit',
    'coral', 'ember', 'glacier', 'saffron', 'raven', 'cedar', 'velvet', 'tide', 'beacon', 'barley',
    'quartz', 'heron', 'juniper', 'cobalt', 'prairie', 'granite', 'otter', 'lotus', 'anchor',
    'maple', 'indigo', 'badger', 'canyon', 'pepper', 'oak', 'dune', 'pearl', 'bison', 'mist',
    'spruce', 'ivory', 'lynx', 'fig', 'slate', 'cricket', 'thistle', 'obsidian', 'walnut', 'mango',
    'sparrow', 'bronze', 'clover', 'moss', 'gale', 'olive', 'tiger', 'cinder', 'hazel', 'plum',
    'basalt', 'wren', 'tulip', 'onyx', 'kettle', 'drum', 'bridge', 'tower', 'crown', 'harp', 'bell')
_FACT_TEMPLATES = ('The {a} of {e} is {v}.', "{e}'s {a} is {v}.", 'For {e}, the {a} is {v}.',
                   'In {e}, the {a} is known to be {v}.')
_QUESTION_TEMPLATES = ('What is the {a} of {e}?', "What is {e}'s {a}?",
                       'Which {a} does {e} have?', 'Name the {a} of {e}.')
_FILLERS = ('Travellers often reach {e} in late spring.', 'Little was written about {e} before '
            'the long war.', 'Scholars still argue about the early history of {e}.',
            'Several roads once connected {e} with the coast.')


def _name(rng: random.Random) -> str:
  return ''.join(rng.choices(_SYLLABLES, k=rng.randint(2, 3))).capitalize()


def _value(rng: random.Random) -> str:
  words = rng.sample(_WORDS, rng.randint(1, 3))
  if rng.random() < 0.25:
    words.insert(0, _name(rng))
  return ' '.join(words)


def _paragraph(rng: random.Random, num_entities: int, num_attributes: int,
               num_questions: int, filler_prob: float, varied: bool,
               qid_prefix: str) -> dict[str, Any]:
  entities: list[str] = []
  while len(entities) < num_entities:
    name = _name(rng)
    if name not in entities:
      entities.append(name)
  attrs = rng.sample(ATTRIBUTES, num_attributes)
  values: set[str] = set()
  facts = []
  for e in entities:
    for a in attrs:
      v = _value(rng)
      while v in values or any(v in w or w in v for w in values):
        v = _value(rng)  # no value contained in another: each answer occurs exactly once
      values.add(v)
      facts.append((e, a, v))
  fact_templates = _FACT_TEMPLATES if varied else _FACT_TEMPLATES[:1]
  sentences = [(rng.choice(fact_templates), f) for f in facts]
  sentences += [(rng.choice(_FILLERS), (e, '', '')) for e in entities if rng.random() < filler_prob]
  rng.shuffle(sentences)
  context, spans = '', {}
  for template, (e, a, v) in sentences:
    text = template.format(e=e, a=a, v=v)
    if v:
      spans[(e, a)] = len(context) + len(text) - len(v) - 1  # every template ends '{v}.'
    context += text + ' '
  context = context.rstrip()
  qas = []
  for j, (e, a, v) in enumerate(rng.sample(facts, num_questions)):
    question = rng.choice(_QUESTION_TEMPLATES if varied else _QUESTION_TEMPLATES[:1]).format(
        a=a, e=e)
    qas.append({'id': f'{qid_prefix}q{j}', 'question': question,
                'answers': [{'text': v, 'answer_start': spans[(e, a)]}]})
  return {'context': context, 'qas': qas}


def generate(num_questions: int, seed: int, *, entities: tuple[int, int] = (2, 4),
             attributes: tuple[int, int] = (2, 3), questions_per_context: int = 3,
             filler_prob: float = 0.5, varied: bool = True, split: str = 'train'
             ) -> dict[str, Any]:
  """A SQuAD-v1.1-layout dict with `num_questions` questions, deterministic in `seed`.

  `varied=False` uses only the plain templates "The <a> of <e> is <v>." / "What is the <a> of
  <e>?", which a small model learns from a few hundred questions (for tests on CPU).
  """
  if split not in FILES:
    raise ValueError(f'split must be one of {sorted(FILES)}, got {split!r}')
  # random.Random seeded by a string is stable across platforms and Python versions.
  rng = random.Random(f'{VERSION}/{seed}/{split}')
  paragraphs, count = [], 0
  while count < num_questions:
    n_e = rng.randint(*entities)
    n_a = rng.randint(*attributes)
    n_q = min(questions_per_context, n_e * n_a, num_questions - count)
    paragraphs.append(_paragraph(rng, n_e, n_a, n_q, filler_prob, varied,
                                 f'synthetic-{split}-{len(paragraphs)}'))
    count += n_q
  return {'version': VERSION, 'synthetic': True,
          'data': [{'title': f'synthetic-{split}', 'paragraphs': paragraphs}]}


def synthetic_split(num_questions: int, seed: int, split: str, **kwargs: Any) -> list[SquadExample]:
  """Generated examples of one split ('train' and 'dev' use independent random streams)."""
  return parse_squad(generate(num_questions, seed, split=split, **kwargs), f'synthetic {split}')


#: The fact templates as regexes capturing (attribute, entity, value), for the baselines.
_FACT_RES = tuple(re.compile(t.replace('.', r'\.').replace("'", "'").format(
    a=r'(?P<a>[a-z ]+?)', e=r'(?P<e>[A-Z][a-z]+)', v=r'(?P<v>[^.]+?)'))
                  for t in _FACT_TEMPLATES)


def _facts(context: str) -> list[tuple[str, str, str]]:
  """(attribute, entity, value) of every fact sentence of a generated context."""
  out = []
  for sentence in re.split(r'(?<=\.) ', context):
    for pattern in _FACT_RES:
      m = pattern.fullmatch(sentence)
      if m:
        out.append((m['a'], m['e'], m['v']))
        break
  return out


def baselines(examples: Sequence[SquadExample], seed: int = 0) -> dict[str, float]:
  """F1 (fractions) of guesses that do not read the question, or read only half of it.

  first_word: the context's first word; random_span: 1-4 random consecutive words;
  question_blind: the expected F1 of a uniformly chosen fact value of the context (knows the
  answer format, ignores the question); attribute_only: the same over the facts whose attribute
  the question names (ignores the entity). A model must beat all four to be reading.
  """
  from dawnjax.squad import metric  # pylint: disable=g-import-not-at-top
  rng = random.Random(seed)
  golds = [ex.answers for ex in examples]
  first = [ex.context.split()[0] for ex in examples]
  spans = []
  blind, attr = np.zeros(len(examples)), np.zeros(len(examples))
  for i, ex in enumerate(examples):
    words = ex.context.split()
    j = rng.randrange(len(words))
    spans.append(' '.join(words[j:j + rng.randint(1, 4)]))
    facts = _facts(ex.context)
    values = [v for _, _, v in facts]
    same = [v for a, _, v in facts if f' {a} ' in f' {ex.question.rstrip("?.")} '] or values
    for out, cands in ((blind, values), (attr, same)):
      if cands:
        _, f1 = metric.question_scores(cands, [ex.answers] * len(cands))
        out[i] = f1.mean()
  score = lambda preds: float(metric.question_scores(preds, golds)[1].mean()) if golds else 0.0
  return {'first_word': score(first), 'random_span': score(spans),
          'question_blind': float(blind.mean()) if len(blind) else 0.0,
          'attribute_only': float(attr.mean()) if len(attr) else 0.0}


def write(out_dir: str, num_questions: Sequence[int] = (20000, 2000), seed: int = 0) -> list[str]:
  os.makedirs(out_dir, exist_ok=True)
  paths = []
  for split, n in zip(FILES, num_questions):
    paths.append(os.path.join(out_dir, FILES[split]))
    with open(paths[-1], 'w', encoding='utf-8') as f:
      json.dump(generate(n, seed, split=split), f)
  return paths


def main(argv: Sequence[str]) -> None:
  del argv
  for path in write(_OUT_DIR.value, (_TRAIN.value, _DEV.value), _SEED.value):
    print(path)


if __name__ == '__main__':
  from absl import app, flags  # pylint: disable=g-import-not-at-top

  _OUT_DIR = flags.DEFINE_string('out_dir', None, 'Directory for the synthetic JSON files.',
                                 required=True)
  _TRAIN = flags.DEFINE_integer('train_questions', 20000, 'Training questions.')
  _DEV = flags.DEFINE_integer('dev_questions', 2000, 'Dev questions.')
  _SEED = flags.DEFINE_integer('seed', 0, 'Generator seed.')
  app.run(main)
