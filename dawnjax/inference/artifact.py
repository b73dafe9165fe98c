"""A self-contained served model: the classifier as serialised StableHLO (jax.export) + its variables.

Loading it needs jax and numpy only: no Flax, no model or training code. The function is
exported with a symbolic batch dimension, so one artifact serves batch 1 (latency) and large
batches (throughput); each is compiled ahead of time at load. Layout of the directory:
  classifier.jax_exported  Exported.serialize() bytes (StableHLO + calling convention)
  variables.npz            the variables' leaves in the exported function's flattening order
  artifact.json            what it is (task, dataset, input spec, target, leaf dtypes), written last
"""
from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any, Callable, Mapping

import jax
import numpy as np

from dawnjax.errors import ConfigError, ResultsError
from dawnjax.report import atomic, summary as summary_lib

SCHEMA = 1
KIND = 'dawnjax-exported-classifier'
FUNCTION = 'classifier.jax_exported'
VARIABLES = 'variables.npz'
MANIFEST = 'artifact.json'


@dataclasses.dataclass(frozen=True)
class Artifact:
  directory: Path
  manifest: dict[str, Any]
  exported: Any  # jax.export.Exported
  variables: Any  # pytree as the exported function expects it (numpy leaves)

  def call(self, variables, inputs):
    """The exported function (jax-traceable: wrap in jax.jit to compile it)."""
    return self.exported.call(variables, inputs)


def _serialize(exported) -> bytes:
  try:
    return bytes(exported.serialize())
  except ImportError as err:  # jax serialises with flatbuffers, an optional dependency
    raise ConfigError(f'cannot serialise the jax.export artifact: {err} (pip install flatbuffers)') from err


def _leaf_bytes(leaves: list[np.ndarray]) -> tuple[bytes, list[dict[str, Any]]]:
  # npz cannot name extended dtypes (bfloat16): such leaves are stored as raw unsigned ints of the
  # same width, and their real dtype is kept in the manifest.
  arrays, specs = {}, []
  for i, leaf in enumerate(leaves):
    leaf = np.asarray(leaf)
    stored = leaf if leaf.dtype.kind in 'biufc' and leaf.dtype.isbuiltin else leaf.view(f'u{leaf.dtype.itemsize}')
    arrays[f'leaf_{i:05d}'] = stored
    specs.append({'dtype': str(leaf.dtype), 'shape': list(leaf.shape)})
  buf = io.BytesIO()
  np.savez(buf, **arrays)
  return buf.getvalue(), specs


def export_classifier(classify: Callable[[Any, Any], Any], variables: Any, directory, *,
                      item_shape, item_dtype, metadata: Mapping[str, Any],
                      platforms: tuple[str, ...] | None = None,
                      output: str = 'int32 predicted class per item') -> Path:
  """Exports classify(variables, inputs[b, *item_shape]) -> labels[b] with a symbolic batch b.

  `platforms`: e.g. ('cuda', 'cpu') for an artifact that runs on both; None = this backend.
  """
  from jax import export

  batch, = export.symbolic_shape('b')
  host = jax.device_get(variables)
  spec = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype), host)
  x_spec = jax.ShapeDtypeStruct((batch, *item_shape), np.dtype(item_dtype))
  exported = export.export(jax.jit(classify), platforms=platforms)(spec, x_spec)
  blob = _serialize(exported)
  leaves = jax.tree_util.tree_leaves(host)
  npz, leaf_specs = _leaf_bytes(leaves)
  out = Path(directory)
  (out / MANIFEST).unlink(missing_ok=True)
  atomic.atomic_write_bytes(out / FUNCTION, blob)
  atomic.atomic_write_bytes(out / VARIABLES, npz)
  manifest = {
      'schema': SCHEMA, 'kind': KIND, **dict(metadata),
      'input': {'shape': ['b', *map(int, item_shape)], 'dtype': str(np.dtype(item_dtype))},
      'output': output,
      'platforms': list(exported.platforms), 'jax_version': jax.__version__,
      'calling_convention_version': exported.calling_convention_version,
      'leaves': leaf_specs, 'files': {'function': FUNCTION, 'variables': VARIABLES},
  }
  atomic.atomic_write_json(out / MANIFEST, summary_lib.jsonable(manifest))
  return out


def load_artifact(directory) -> Artifact:
  """Reads an artifact directory; raises ResultsError naming what is wrong."""
  from jax import export

  where = Path(directory)
  path = where / MANIFEST
  try:
    manifest = json.loads(path.read_text(encoding='utf-8'))
    blob = (where / FUNCTION).read_bytes()
    stored = np.load(where / VARIABLES)
  except OSError as err:
    raise ResultsError(f'--exported={where}: cannot read {err.filename or path}: '
                       f'{err.strerror or err}') from err
  except ValueError as err:
    raise ResultsError(f'{path}: not valid JSON ({err})') from err
  if not isinstance(manifest, dict) or manifest.get('kind') != KIND or manifest.get('schema') != SCHEMA:
    raise ResultsError(f'{path}: not a dawnjax exported classifier of schema {SCHEMA}')
  try:
    exported = export.deserialize(bytearray(blob))
  except ImportError as err:
    raise ConfigError(f'cannot load the jax.export artifact: {err} (pip install flatbuffers)') from err
  except Exception as err:  # a damaged or incompatible serialisation
    raise ResultsError(f'{where / FUNCTION}: cannot deserialise ({type(err).__name__}: {err})') from err
  specs = manifest['leaves']
  leaves = []
  for i, spec in enumerate(specs):
    leaf = stored[f'leaf_{i:05d}']
    dtype = np.dtype(jax.numpy.dtype(spec['dtype']))
    leaves.append(leaf if leaf.dtype == dtype else leaf.view(dtype))
  if len(leaves) + 1 != len(exported.in_avals):
    raise ResultsError(f'{where}: {len(leaves)} stored variables, the function takes '
                       f'{len(exported.in_avals) - 1}')
  # in_tree is ((variables, inputs), {}): the inputs are the last leaf.
  (variables, _), _ = jax.tree_util.tree_unflatten(exported.in_tree, leaves + [None])
  return Artifact(where, manifest, exported, variables)
