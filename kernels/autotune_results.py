"""Every candidate XLA's autotuner timed, per instruction: the best against the first (the one taken untimed).

  XLA_FLAGS=--xla_gpu_dump_autotune_logs_to=/tmp/autotune.txt python3 -m dawnjax.experiments.cifar10 ...
  python3 kernels/autotune_results.py /tmp/autotune.txt

The dump is an xla.AutotuningLogs text proto: one `logs { instr {...} results {...} ... }` per autotuned
instruction, its results in the order the backends offered the candidates (for cuDNN, its heuristics' order). With
--xla_gpu_autotune_level=0 or --xla_gpu_exclude_nondeterministic_ops the autotuner takes the first candidate that
compiles without timing any, so per instruction the first valid result's run time against the best one's is what
skipping the autotuning would cost on each execution. Parsed by hand (brace matching outside quoted strings): the
XLA protos are not importable from Python.
"""
from __future__ import annotations

import argparse
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
      start = m.end()
      depth = 1
      i = m.end()
      continue
    i += 1
  return out


def _duration_seconds(body: str) -> float | None:
  run = blocks(body, 'run_time')
  if not run:
    return None
  secs = re.search(r'\bseconds:\s*(\d+)', run[0])
  nanos = re.search(r'\bnanos:\s*(\d+)', run[0])
  return (int(secs.group(1)) if secs else 0) + (int(nanos.group(1)) if nanos else 0) / 1e9


@dataclasses.dataclass(frozen=True)
class Result:
  seconds: float | None
  failed: bool
  algo: str


@dataclasses.dataclass(frozen=True)
class Instruction:
  name: str
  target: str
  results: tuple[Result, ...]

  def valid(self) -> list[Result]:
    return [r for r in self.results if not r.failed and r.seconds]

  @property
  def best(self) -> Result | None:
    return min(self.valid(), key=lambda r: r.seconds, default=None)

  @property
  def first(self) -> Result | None:
    v = self.valid()
    return v[0] if v else None


def parse(text: str) -> list[Instruction]:
  out = []
  for log in blocks(text, 'logs'):
    instr = (blocks(log, 'instr') or [''])[0]
    name = re.search(r'\bname:\s*"([^"]*)"', instr)
    target = re.search(r'\bcustom_call_target:\s*"([^"]*)"', instr)
    results = []
    for body in blocks(log, 'results'):
      algo = re.search(r'\balgo_id:\s*(-?\d+)', body)
      results.append(Result(_duration_seconds(body), bool(blocks(body, 'failure')), algo.group(1) if algo else '?'))
    out.append(Instruction(name.group(1) if name else '?', target.group(1) if target else 'fusion', tuple(results)))
  return out


def summarise(instructions: list[Instruction]) -> str:
  if not instructions:
    return 'no autotuning logs in the file'
  rows = ['| instruction | target | candidates | failed | best us | first us | first / best | best is candidate |',
          '| --- | --- | --- | --- | --- | --- | --- | --- |']
  loss = best_total = 0.0
  for ins in instructions:
    best, first = ins.best, ins.first
    if best is None:
      rows.append(f'| {ins.name} | {ins.target} | {len(ins.results)} | {len(ins.results)} | - | - | - | - |')
      continue
    loss += first.seconds - best.seconds
    best_total += best.seconds
    rank = ins.valid().index(best)
    rows.append(f'| {ins.name} | {ins.target} | {len(ins.results)} | {sum(r.failed for r in ins.results)} | '
                f'{best.seconds * 1e6:.1f} | {first.seconds * 1e6:.1f} | {first.seconds / best.seconds:.2f} | '
                f'{rank} (algo {best.algo}) |')
  rows.append(f'\nBest configs sum to {best_total * 1e6:.1f} us, first configs to {(best_total + loss) * 1e6:.1f} us '
              f'(+{loss * 1e6:.1f} us per execution of each instruction once).')
  return '\n'.join(rows)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('dump', type=pathlib.Path)
  args = p.parse_args()
  print(summarise(parse(args.dump.read_text(errors='replace'))))


if __name__ == '__main__':
  main()
