"""Totals an XLA compile log (VLOG 1 of gpu_compiler, the autotuners) by what took the time.

  python3 kernels/compile_log_summary.py LOG [--top=N]

XLA's scoped timers print '<label> ... time: <value> <unit>' (or '... took <value> <unit>'); labels
are grouped after the module name is stripped, so the epoch program's and the eval program's
passes add up under one label. Also counts the autotuner's log lines per source file, the number
of XLA compilations JAX logged, and, for a dumped autotuning-results file beside the log
(autotune_results.txt), how many results it holds.

With TF_CPP_VMODULE=hlo_pass_pipeline=1 in the log, each HLO pass's time is the gap from its
'HLO pass NAME' line to the next line of the same thread, summed per (module, pass): the passes
that hold a compile (e.g. the autotuners) by name.
"""
import argparse
import collections
import pathlib
import re

_TIMER = re.compile(r'\] (?P<label>.+?)(?::)?\s+(?:time:|took)\s+(?P<value>[\d.]+)\s*(?P<unit>us|ms|s|sec|seconds?)\b')
_SOURCE = re.compile(r'^[IWE]\d{4} [\d:.]+\s+\d+ (?P<file>[\w.]+):\d+\]')
_UNITS = {'us': 1e-6, 'ms': 1e-3, 's': 1.0, 'sec': 1.0, 'second': 1.0, 'seconds': 1.0}


_LINE = re.compile(r'^[IWE]\d{4} (?P<h>\d+):(?P<m>\d+):(?P<s>[\d.]+)\s+(?P<tid>\d+) ')
_PIPELINE = re.compile(r'Running HLO pass pipeline on module (?P<module>[\w.-]+): (?P<pipeline>.+)$')
_PASS = re.compile(r'\] +HLO pass (?P<name>.+)$')


def pass_times(text: str) -> dict[tuple[str, str], float]:
  """(module, pass) -> seconds, from hlo_pass_pipeline's VLOG(1) lines (same-thread gaps)."""
  module, open_pass, totals = {}, {}, collections.defaultdict(float)
  for line in text.splitlines():
    if not (m := _LINE.match(line)):
      continue
    t = int(m.group('h')) * 3600 + int(m.group('m')) * 60 + float(m.group('s'))
    tid = m.group('tid')
    if tid in open_pass:
      key, start = open_pass.pop(tid)
      totals[key] += max(t - start, 0.0)
    if pm := _PIPELINE.search(line):
      module[tid] = pm.group('module')
    elif ps := _PASS.search(line):
      open_pass[tid] = ((module.get(tid, '?'), ps.group('name').strip()), t)
  return totals


def summarise(text: str, top: int = 30) -> str:
  totals, counts = collections.defaultdict(float), collections.Counter()
  sources = collections.Counter()
  for line in text.splitlines():
    if m := _SOURCE.match(line):
      sources[m.group('file')] += 1
    if m := _TIMER.search(line):
      label = re.sub(r'jit_\w+|module \S+|\bfor \S+', '<module>', m.group('label')).strip()
      totals[label] += float(m.group('value')) * _UNITS[m.group('unit')]
      counts[label] += 1
  out = ['seconds  calls  label (XLA scoped timers; nested timers overlap, so do not add rows)']
  for label, seconds in sorted(totals.items(), key=lambda kv: -kv[1])[:top]:
    out.append(f'{seconds:7.2f}  {counts[label]:5d}  {label[:150]}')
  out.append('')
  out.append('log lines per source file: ' + ', '.join(f'{f} {n}' for f, n in sources.most_common(12)))
  if passes := pass_times(text):
    out.append('')
    out.append('seconds  module / HLO pass (gap to the thread\'s next log line)')
    for (module, name), seconds in sorted(passes.items(), key=lambda kv: -kv[1])[:top]:
      out.append(f'{seconds:7.2f}  {module} / {name}')
  comp = re.findall(r'Finished XLA compilation of jit\((\w+)\) in ([\d.]+) sec', text)
  out.append('JAX compile log: ' + ', '.join(f'{n} {float(s):.1f} s' for n, s in comp))
  return '\n'.join(out)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('log')
  p.add_argument('--top', type=int, default=30)
  args = p.parse_args()
  log = pathlib.Path(args.log)
  print(summarise(log.read_text(errors='replace'), args.top))
  results = log.with_name('autotune_results.txt')
  if results.exists():
    text = results.read_text(errors='replace')
    print(f'{results.name}: {text.count("results {")} autotuning results '
          f'({text.count("conv")} mentions of conv, {text.count("gemm")} of gemm)')


if __name__ == '__main__':
  main()
