"""Every candidate XLA's autotuner timed: per instruction the best against the first, and which cuDNN engines cost
the autotuning its time.

  XLA_FLAGS=--xla_gpu_dump_autotune_logs_to=/tmp/autotune.txt python3 -m dawnjax.experiments.cifar10 ...
  python3 kernels/autotune_results.py /tmp/autotune.txt [--compare OTHER.txt]

The dump (JAX 0.11's XLA) is a text proto with one `instruction_profiles { hlo_fingerprint: ... config_profiles {
config { backend: CUDNN backend_config { algorithm { algo_id: E ... } } } run_time { nanos: N } } ... }` per
autotuned instruction, its candidates in the order the backend offered them (for cuDNN: its heuristics, then the
fallback engines). Printed:
  * per instruction with more than one candidate: candidates, best and first run time (the first is what
    --xla_gpu_autotune_level=0 or --xla_gpu_exclude_nondeterministic_ops take, untimed), the winner's engine;
  * per cuDNN engine: candidates, summed run time (one run each; the profiler runs each a few times) and wins;
  * with --compare, the instructions whose winning backend or engine differs between two dumps.
Parsed by hand (brace matching outside quoted strings): XLA's protos are not importable from Python.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import pathlib
import re


def blocks(text: str, key: str) -> list[str]:
  """Bodies of the `key { ... }` blocks at the top level of `text` (nested braces and quoted strings respected)."""
  out, depth, i, n = [], 0, 0, len(text)
  start = None
  pattern = re.compile(r'\b' + re.escape(key) + r'\s*\{')
  while i < n:
    ch = text[i]
    if ch == '"':
      i += 1
      while i < n and text[i] != '"':
        i += 2 if text[i] == '\\' else 1
    elif ch == '{':
      depth += 1
    elif ch == '}':
      depth -= 1
      if depth == 0 and start is not None:
        out.append(text[start:i])
        start = None
    elif depth == 0 and (m := pattern.match(text, i)):
      start, depth, i = m.end(), 1, m.end()
      continue
    i += 1
  return out


def _seconds(body: str) -> float:
  run = blocks(body, 'run_time')
  if not run:
    return 0.0
  secs = re.search(r'\bseconds:\s*(\d+)', run[0])
  nanos = re.search(r'\bnanos:\s*(\d+)', run[0])
  return (int(secs.group(1)) if secs else 0) + (int(nanos.group(1)) if nanos else 0) / 1e9


@dataclasses.dataclass(frozen=True)
class Candidate:
  backend: str
  engine: int | None  # cuDNN engine (algo_id; 0 when the text format omits it), None for other backends
  seconds: float  # 0: not timed (failed)


@dataclasses.dataclass(frozen=True)
class Instruction:
  fingerprint: str
  candidates: tuple[Candidate, ...]

  def timed(self) -> list[Candidate]:
    return [c for c in self.candidates if c.seconds > 0]

  @property
  def best(self) -> Candidate | None:
    return min(self.timed(), key=lambda c: c.seconds, default=None)

  @property
  def first(self) -> Candidate | None:
    t = self.timed()
    return t[0] if t else None


def parse(text: str) -> list[Instruction]:
  out = []
  for prof in blocks(text, 'instruction_profiles'):
    fp = re.search(r'\bhlo_fingerprint:\s*"([^"]*)"', prof)
    cands = []
    for cp in blocks(prof, 'config_profiles'):
      backend = re.search(r'\bbackend:\s*(\w+)', cp)
      name = backend.group(1) if backend else '?'
      engine = None
      if name == 'CUDNN':
        algo = re.search(r'\balgo_id:\s*(\d+)', cp)
        engine = int(algo.group(1)) if algo else 0
      cands.append(Candidate(name, engine, _seconds(cp)))
    out.append(Instruction(fp.group(1) if fp else '?', tuple(cands)))
  return out


def _winner(ins: Instruction) -> str:
  b = ins.best
  return '-' if b is None else (f'{b.backend} eng{b.engine}' if b.engine is not None else b.backend)


def summarise(instructions: list[Instruction]) -> str:
  tuned = [i for i in instructions if len(i.candidates) > 1 and i.best is not None]
  if not tuned:
    return 'no autotuned instructions in the file'
  rows = ['| instruction | backends | candidates | best us | first us | first / best | winner |',
          '| --- | --- | --- | --- | --- | --- | --- |']
  loss = 0.0
  for ins in sorted(tuned, key=lambda i: -sum(c.seconds for c in i.candidates)):
    best, first = ins.best, ins.first
    loss += first.seconds - best.seconds
    backends = ','.join(sorted({c.backend for c in ins.candidates}))
    rows.append(f'| {ins.fingerprint[:12]} | {backends} | {len(ins.candidates)} | {best.seconds * 1e6:.1f} | '
                f'{first.seconds * 1e6:.1f} | {first.seconds / best.seconds:.2f} | {_winner(ins)} |')
  rows.append(f'\nFirst candidates instead of the best: +{loss * 1e6:.1f} us for one execution of each instruction.')
  time, count, wins = collections.Counter(), collections.Counter(), collections.Counter()
  for ins in tuned:
    for c in ins.candidates:
      if c.engine is not None:
        time[c.engine] += c.seconds
        count[c.engine] += 1
    if ins.best.engine is not None:
      wins[ins.best.engine] += 1
  total = sum(time.values())
  if total:
    rows += ['', '| cuDNN engine | candidates | summed run ms | share | wins |', '| --- | --- | --- | --- | --- |']
    for engine, secs in time.most_common():
      rows.append(f'| {engine} | {count[engine]} | {secs * 1e3:.1f} | {secs / total:.0%} | {wins[engine]} |')
  return '\n'.join(rows)


def compare(a: list[Instruction], b: list[Instruction]) -> str:
  """The instructions tuned in both dumps whose winner differs."""
  other = {i.fingerprint: i for i in b if i.best is not None}
  both = [(i, other[i.fingerprint]) for i in a if i.best is not None and i.fingerprint in other]
  differ = [(x, y) for x, y in both if _winner(x) != _winner(y)]
  lines = [f'{len(both)} instructions in both dumps; {len(differ)} with another winner:']
  lines += [f'  {x.fingerprint[:12]}: {_winner(x)} ({x.best.seconds * 1e6:.1f} us) vs {_winner(y)} '
            f'({y.best.seconds * 1e6:.1f} us)' for x, y in differ]
  return '\n'.join(lines)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('dump', type=pathlib.Path)
  p.add_argument('--compare', type=pathlib.Path, help='another dump: instructions whose winner differs')
  args = p.parse_args()
  this = parse(args.dump.read_text(errors='replace'))
  print(summarise(this))
  if args.compare:
    print('\n' + compare(this, parse(args.compare.read_text(errors='replace'))))


if __name__ == '__main__':
  main()
