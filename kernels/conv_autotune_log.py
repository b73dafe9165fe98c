"""Where XLA's cuDNN convolution autotuning spends a cold compile, from its own log lines.

  TF_CPP_MIN_LOG_LEVEL=0 TF_CPP_VMODULE=conv_algorithm_picker=4 python3 -m dawnjax.experiments.cifar10 ... > LOG 2>&1
  python3 kernels/conv_autotune_log.py LOG [--top=N]

conv_algorithm_picker.cc logs 'Trying algorithm ENGINE for INSTR' before each candidate and 'Best time: X ms. Worst
time: Y ms. Total iterations: N' after timing it (disqualified candidates log no time). A candidate's wall time is
the gap from its 'Trying' line to the picker's next line. Its GPU time is estimated as (N + 1) runs of its best
time (one warm-up run, then N timed ones); the rest of its wall time is host work: building the cuDNN plan (some
engines compile kernels at run time), allocating and synchronising. Prints, per convolution kind (forward,
input gradient, filter gradient), the candidates, their wall seconds and that split, and the slowest candidates:
what bounds the autotuning, and so which candidates a filter would have to drop to shorten it.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import pathlib
import re

_LINE = re.compile(r'^[IWE]\d{4} (?P<h>\d+):(?P<m>\d+):(?P<s>[\d.]+)\s+\d+ conv_algorithm_picker\.cc:\d+\] (?P<msg>.*)$')
_TRYING = re.compile(r'^Trying algorithm (?P<engine>\S+) for (?P<instr>.*)$')
_BEST = re.compile(r'^Best time: (?P<best>[\d.e+-]+) ms\. Worst time: [\d.e+-]+ ms\. Total iterations: (?P<iters>\d+)')
_KINDS = {'convForward': 'forward', 'convBackwardInput': 'input gradient', 'convBackwardFilter': 'filter gradient',
          'convBiasActivationForward': 'forward (fused)'}


@dataclasses.dataclass
class Candidate:
  engine: str
  kind: str
  start: float
  wall: float = 0.0
  best_ms: float | None = None  # None: disqualified (no timing)
  iterations: int = 0

  @property
  def gpu_seconds(self) -> float:
    return 0.0 if self.best_ms is None else (self.iterations + 1) * self.best_ms / 1e3


def conv_kind(instr: str) -> str:
  m = re.search(r'__cudnn\$(\w+)', instr)
  return _KINDS.get(m.group(1), m.group(1)) if m else 'unknown'


def parse(text: str) -> list[Candidate]:
  """The candidates in log order; each one's wall time ends at the picker's next line other than its timing
  (its own scoped timer at VLOG 2, the next candidate, or the convolution's end)."""
  out: list[Candidate] = []
  open_: Candidate | None = None
  for line in text.splitlines():
    m = _LINE.match(line)
    if not m:
      continue
    t = int(m.group('h')) * 3600 + int(m.group('m')) * 60 + float(m.group('s'))
    msg = m.group('msg')
    if (b := _BEST.match(msg)):
      if open_ is not None:
        open_.best_ms, open_.iterations = float(b.group('best')), int(b.group('iters'))
      continue
    if open_ is not None:
      open_.wall, open_ = max(t - open_.start, 0.0), None
    if (tr := _TRYING.match(msg)):
      open_ = Candidate(tr.group('engine'), conv_kind(tr.group('instr')), t)
      out.append(open_)
  return out


def summarise(candidates: list[Candidate], top: int = 10) -> str:
  if not candidates:
    return 'no conv_algorithm_picker lines (run with TF_CPP_MIN_LOG_LEVEL=0 TF_CPP_VMODULE=conv_algorithm_picker=4)'
  by_kind: dict[str, list[Candidate]] = collections.defaultdict(list)
  for c in candidates:
    by_kind[c.kind].append(c)
  rows = ['| kind | candidates | disqualified | wall s | est. GPU s | host s | slowest candidate s |',
          '| --- | --- | --- | --- | --- | --- | --- |']
  for kind, cs in [*sorted(by_kind.items()), ('all', candidates)]:
    wall, gpu = sum(c.wall for c in cs), sum(c.gpu_seconds for c in cs)
    rows.append(f'| {kind} | {len(cs)} | {sum(c.best_ms is None for c in cs)} | {wall:.2f} | {gpu:.2f} | '
                f'{wall - gpu:.2f} | {max(c.wall for c in cs):.3f} |')
  rows += ['', f'Slowest {top} candidates (wall s, best run ms, iterations, engine, kind):']
  for c in sorted(candidates, key=lambda c: -c.wall)[:top]:
    best = '-' if c.best_ms is None else f'{c.best_ms:.3f}'
    rows.append(f'  {c.wall:.3f}  {best:>8}  {c.iterations:2d}  {c.engine}  {c.kind}')
  walls = sorted((c.wall for c in candidates), reverse=True)
  total = sum(walls) or 1.0
  for frac in (0.1, 0.25):
    k = max(int(len(walls) * frac), 1)
    rows.append(f'The slowest {frac:.0%} of candidates ({k}) take {sum(walls[:k]) / total:.0%} of the wall time.')
  return '\n'.join(rows)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('log', type=pathlib.Path)
  p.add_argument('--top', type=int, default=10)
  args = p.parse_args()
  print(summarise(parse(args.log.read_text(errors='replace')), args.top))


if __name__ == '__main__':
  main()
