"""cuDNN convolution engines kept out of XLA's autotuning, through cuDNN's errata filter.

XLA times every engine configuration cuDNN offers for each convolution: its heuristics' list and the fallback
engines after it. On the CIFAR-10 network (H200, cuDNN 9.19, results/cifar10_jpeg/h200_2026-12-02_s14) four engines
(0, 1, 19, 45) took 85% of the autotuner's GPU time (single runs of up to 657 ms against a best of 0.14 ms) and never
won; the winners were engines 62, 65 and 67. cuDNN's frontend reads a JSON "errata" file named by
$CUDNN_ERRATA_JSON_FILE whose rules block engines per operation; XLA applies it to every candidate it builds, so a
blocked engine is never compiled or timed. This module writes such a file for a list of engine numbers and points
the variable at it: it must run before the first convolution is compiled (cuDNN reads the file once).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Sequence

from dawnjax.errors import ConfigError

ENV = 'CUDNN_ERRATA_JSON_FILE'
# The convolution operations as cuDNN's frontend names them in an execution plan's tag ("ConvFwd_eng0_k2=...").
CONV_OPERATIONS = ('ConvFwd', 'ConvBwdData', 'ConvBwdFilter')


def errata(engines: Sequence[int]) -> dict:
  """The errata document blocking `engines` (every knob setting) for forward, input- and filter-gradient
  convolutions."""
  bad = [e for e in engines if not isinstance(e, int) or e < 0]
  if bad:
    raise ConfigError(f'--cudnn_excluded_engines: {bad} are not engine numbers (integers >= 0)')
  rules = [{'rule_id': f'{op}_eng{e}', 'operation': op, 'engine': e, 'cudnn_version_start': 0,
            'cudnn_version_end': -1}
           for e in sorted(set(engines)) for op in CONV_OPERATIONS]
  return {'version': 1, 'rules': rules}


def parse_engines(items: Sequence[str]) -> list[int]:
  """`--cudnn_excluded_engines`' items as engine numbers; a non-integer item is a ConfigError."""
  try:
    return [int(e) for e in items]
  except ValueError as err:
    raise ConfigError(f'--cudnn_excluded_engines={",".join(items)}: not integers') from err


def install(engines: Sequence[int], directory: str | None = None) -> str | None:
  """Writes the errata file for `engines` (named by its content) and sets $CUDNN_ERRATA_JSON_FILE to it; returns
  its path, or None for no engines. A file the user already named is not overridden: that is an error."""
  if not engines:
    return None
  doc = json.dumps(errata(engines), indent=1, sort_keys=True)
  existing = os.environ.get(ENV)
  directory = directory or tempfile.gettempdir()
  path = os.path.join(directory, f'dawnjax_cudnn_errata_{hashlib.sha256(doc.encode()).hexdigest()[:16]}.json')
  if existing and os.path.abspath(existing) != os.path.abspath(path):
    raise ConfigError(f'--cudnn_excluded_engines and ${ENV}={existing} both set: merge the rules into one file')
  os.makedirs(directory, exist_ok=True)
  tmp = f'{path}.{os.getpid()}.tmp'
  with open(tmp, 'w') as f:
    f.write(doc)
  os.replace(tmp, path)
  os.environ[ENV] = path
  return path


def installed_rules() -> str:
  """The errata file XLA's cuDNN will read ('' if none), for cache keys. cuDNN ignores a file it cannot read, so an
  unreadable one is keyed as such rather than failing the run."""
  path = os.environ.get(ENV)
  if not path:
    return ''
  try:
    with open(path) as f:
      return f.read()
  except OSError as err:
    return f'unreadable {path}: {err.strerror or err}'
