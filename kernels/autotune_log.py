"""Where XLA's autotuning spends a cold compile, instruction by instruction, from its own log lines.

  XLA_FLAGS=--xla_gpu_dump_autotune_logs_to=/tmp/at.txtpb TF_CPP_MIN_LOG_LEVEL=0 TF_CPP_VMODULE=autotuner=2 \
      python3 -m dawnjax.experiments.cifar10 ... > LOG 2>&1
  python3 kernels/autotune_log.py LOG [--top=N]

XLA's autotuner (xla/backends/autotuner/autotuner.cc in the JAX 0.11 builds) handles one instruction at a time:
'Getting config for HLO: INSTR', then either 'Using cached config' or 'Found total of N supported configs.', the
candidates compiled (on a thread pool), 'Successfully compiled K configs out of N configs.', each candidate timed on
the GPU one after another (VLOG 2: '{BACKEND : duration: D, scratch_bytes: S}'), 'Picked best config: ...'. The gaps
between those lines of one thread split each instruction's autotuning into compiling and profiling. Printed per kind
(cuDNN forward / input gradient / filter gradient convolution, cuBLAS(Lt) GEMM, fusion): instructions tuned, cache
hits, candidates, compile and profile seconds, and the instructions that took longest.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import pathlib
import re

_LINE = re.compile(r'^[IWE]\d{4} (?P<h>\d+):(?P<m>\d+):(?P<s>[\d.]+)\s+(?P<tid>\d+) autotuner\.cc:\d+\] (?P<msg>.*)$')
_FOUND = re.compile(r'^Found total of (?P<n>\d+) supported configs')
_COMPILED = re.compile(r'^Successfully compiled (?P<k>\d+) configs out of (?P<n>\d+) configs')
_RESULT = re.compile(r'^\{(?P<backend>[^:{]+?) :.*duration: (?P<dur>[\d.]+)(?P<unit>ns|us|ms|s)\b')
_UNITS = {'ns': 1e-9, 'us': 1e-6, 'ms': 1e-3, 's': 1.0}
_CONV_KINDS = {'convForward': 'conv forward', 'convBackwardInput': 'conv input gradient',
               'convBackwardFilter': 'conv filter gradient', 'convBiasActivationForward': 'conv forward (fused)'}


@dataclasses.dataclass
class Tuned:
  """One instruction's pass through the autotuner."""
  kind: str
  name: str
  start: float
  cached: bool = False
  configs: int = 0
  compiled: int = 0
  found_at: float | None = None
  compiled_at: float | None = None
  picked_at: float | None = None
  durations: list[float] = dataclasses.field(default_factory=list)  # each candidate's measured run, seconds

  @property
  def compile_seconds(self) -> float:
    return (self.compiled_at - self.found_at) if self.found_at is not None and self.compiled_at is not None else 0.0

  @property
  def profile_seconds(self) -> float:
    return (self.picked_at - self.compiled_at) if self.compiled_at is not None and self.picked_at is not None else 0.0


def instruction_kind(hlo: str) -> str:
  if (m := re.search(r'__cudnn\$(\w+)', hlo)):
    return _CONV_KINDS.get(m.group(1), 'cudnn ' + m.group(1))
  if '__cublas' in hlo:
    return 'gemm (cublas)'
  if ' fusion(' in hlo or 'kind=k' in hlo:
    return 'fusion'
  return 'other'


def parse(text: str) -> list[Tuned]:
  """Every instruction the autotuner saw, in log order (lines of each thread paired with that thread's)."""
  out: list[Tuned] = []
  current: dict[str, Tuned] = {}
  for line in text.splitlines():
    m = _LINE.match(line)
    if not m:
      continue
    t = int(m.group('h')) * 3600 + int(m.group('m')) * 60 + float(m.group('s'))
    tid, msg = m.group('tid'), m.group('msg')
    if msg.startswith('Getting config for HLO: '):
      hlo = msg[len('Getting config for HLO: '):]
      name = hlo.split(' = ', 1)[0].strip()
      current[tid] = Tuned(instruction_kind(hlo), name, t)
      out.append(current[tid])
      continue
    tuned = current.get(tid)
    if tuned is None:
      continue
    if msg.startswith('Using cached config'):
      tuned.cached = True
    elif (f := _FOUND.match(msg)):
      tuned.configs, tuned.found_at = int(f.group('n')), t
    elif (c := _COMPILED.match(msg)):
      tuned.compiled, tuned.compiled_at = int(c.group('k')), t
    elif (r := _RESULT.match(msg)):
      tuned.durations.append(float(r.group('dur')) * _UNITS[r.group('unit')])
    elif msg.startswith('Picked best config') or msg.startswith('Skipping profiling'):
      tuned.picked_at = t
  return out


def summarise(tuned: list[Tuned], top: int = 10) -> str:
  if not tuned:
    return 'no autotuner lines (run with TF_CPP_MIN_LOG_LEVEL=0 TF_CPP_VMODULE=autotuner=2)'
  by_kind: dict[str, list[Tuned]] = collections.defaultdict(list)
  for x in tuned:
    by_kind[x.kind].append(x)
  rows = ['| kind | instructions | cache hits | candidates | compiled | compile s | profile s | slowest s |',
          '| --- | --- | --- | --- | --- | --- | --- | --- |']
  for kind, xs in [*sorted(by_kind.items()), ('all', tuned)]:
    rows.append(f'| {kind} | {len(xs)} | {sum(x.cached for x in xs)} | {sum(x.configs for x in xs)} | '
                f'{sum(x.compiled for x in xs)} | {sum(x.compile_seconds for x in xs):.2f} | '
                f'{sum(x.profile_seconds for x in xs):.2f} | '
                f'{max(x.compile_seconds + x.profile_seconds for x in xs):.2f} |')
  rows += ['', f'Longest {top} (compile s, profile s, candidates, best / median / worst candidate run us, kind, name):']
  for x in sorted(tuned, key=lambda x: -(x.compile_seconds + x.profile_seconds))[:top]:
    runs = sorted(d for d in x.durations if d > 0)
    spread = (f'{runs[0] * 1e6:.0f} / {runs[len(runs) // 2] * 1e6:.0f} / {runs[-1] * 1e6:.0f}' if runs else '-')
    rows.append(f'  {x.compile_seconds:6.2f} {x.profile_seconds:6.2f} {x.configs:4d}  {spread:>20}  {x.kind}  {x.name}')
  return '\n'.join(rows)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('log', type=pathlib.Path)
  p.add_argument('--top', type=int, default=10)
  args = p.parse_args()
  print(summarise(parse(args.log.read_text(errors='replace')), args.top))


if __name__ == '__main__':
  main()
