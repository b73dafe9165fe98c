"""How long XLA's autotuner profiled each instruction, from its own log lines (JAX 0.11's XLA).

  TF_CPP_MIN_LOG_LEVEL=0 TF_CPP_VMODULE=autotuner=2 python3 -m dawnjax.experiments.cifar10 ... > LOG 2>&1
  python3 kernels/autotune_log.py LOG [--top=N]

xla/backends/autotuner/autotuner.cc compiles an instruction's candidates on a thread pool, then logs 'Using runner
K' and times them on the GPU one after another; at VLOG 2 it then prints one '{BACKEND : duration: D, scratch_bytes:
S}' line per candidate, all at once. So per thread, 'Using runner' to the last result line is that instruction's
profiling, including any wait for the runner that other threads' instructions hold, so spans overlap; the
durations are its candidates' single runs (the profiler runs each several times). Printed per backend:
instructions, candidates, the wall time covered by its profiling spans (their union) and the summed single-run
seconds, and the longest spans
with their slowest candidates: the cost of autotuning that a cold compile pays, which --xla_gpu_dump_autotune_logs_to
and kernels/autotune_results.py then attribute to engines.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import pathlib
import re

_LINE = re.compile(r'^[IWE]\d{4} (?P<h>\d+):(?P<m>\d+):(?P<s>[\d.]+)\s+(?P<tid>\d+) autotuner\.cc:\d+\] (?P<msg>.*)$')
_RESULT = re.compile(r'^\{(?P<backend>\w+) :(?P<rest>.*?)duration: (?P<dur>[\d.]+)(?P<unit>ns|us|ms|s)?, scratch')
_UNITS = {'ns': 1e-9, 'us': 1e-6, 'ms': 1e-3, 's': 1.0}


@dataclasses.dataclass
class Profiled:
  """One instruction's profiling on one thread."""
  start: float
  end: float = 0.0
  backend: str = '?'
  durations: list[float] = dataclasses.field(default_factory=list)  # one run per timed candidate, seconds
  failed: int = 0

  @property
  def seconds(self) -> float:
    return max(self.end - self.start, 0.0)


def parse(text: str) -> list[Profiled]:
  out: list[Profiled] = []
  current: dict[str, Profiled] = {}
  for line in text.splitlines():
    m = _LINE.match(line)
    if not m:
      continue
    t = int(m.group('h')) * 3600 + int(m.group('m')) * 60 + float(m.group('s'))
    tid, msg = m.group('tid'), m.group('msg')
    if msg.startswith('Using runner'):
      current[tid] = Profiled(t)
      out.append(current[tid])
    elif (r := _RESULT.match(msg)) and tid in current:
      p = current[tid]
      p.end, p.backend = t, r.group('backend')
      if 'FAILED' in r.group('rest'):
        p.failed += 1
      else:
        p.durations.append(float(r.group('dur')) * _UNITS[r.group('unit') or 's'])
  return [p for p in out if p.end]


def covered_seconds(profiled: list[Profiled]) -> float:
  """Wall time inside at least one of the spans (overlapping spans counted once)."""
  total, reach = 0.0, float('-inf')
  for p in sorted(profiled, key=lambda p: p.start):
    if p.end > reach:
      total += p.end - max(p.start, reach)
      reach = p.end
  return total


def summarise(profiled: list[Profiled], top: int = 10) -> str:
  if not profiled:
    return 'no autotuner profiling lines (run with TF_CPP_MIN_LOG_LEVEL=0 TF_CPP_VMODULE=autotuner=2)'
  by: dict[str, list[Profiled]] = collections.defaultdict(list)
  for p in profiled:
    by[p.backend].append(p)
  rows = ['| backend | instructions | candidates | failed | profiling wall s (union) | summed single runs s |',
          '| --- | --- | --- | --- | --- | --- |']
  for backend, ps in [*sorted(by.items()), ('all', profiled)]:
    rows.append(f'| {backend} | {len(ps)} | {sum(len(p.durations) for p in ps)} | {sum(p.failed for p in ps)} | '
                f'{covered_seconds(ps):.2f} | {sum(sum(p.durations) for p in ps):.3f} |')
  rows += ['', f'Longest {top} spans (s, backend, candidates, best us, slowest three ms):']
  for p in sorted(profiled, key=lambda p: -p.seconds)[:top]:
    d = sorted(p.durations)
    slow = ', '.join(f'{x * 1e3:.1f}' for x in d[-3:][::-1])
    rows.append(f'  {p.seconds:6.2f}  {p.backend}  {len(d):3d}  {d[0] * 1e6 if d else 0:8.1f}  {slow}')
  return '\n'.join(rows)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('log', type=pathlib.Path)
  p.add_argument('--top', type=int, default=10)
  args = p.parse_args()
  print(summarise(parse(args.log.read_text(errors='replace')), args.top))


if __name__ == '__main__':
  main()
