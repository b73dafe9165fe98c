"""A trained model as a directory: `variables/` (orbax StandardCheckpointer) + `model.json`.

model.json says what the variables are (task, dataset, model name, the recipe that rebuilds the
network without data, input spec, target, the accuracy training measured) so the inference
benchmark needs nothing else. It is written last, atomically, and removed first on a rewrite:
a directory with a model.json always holds the matching, complete variables.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping

from dawnjax.errors import ResultsError
from dawnjax.report import atomic, summary as summary_lib

SCHEMA = 1
KIND = 'dawnjax-model'
MANIFEST = 'model.json'
VARIABLES = 'variables'
#: Where the training runner puts the model inside its --output_dir.
RUN_SUBDIR = 'model'


@dataclasses.dataclass(frozen=True)
class SavedModel:
  directory: Path
  manifest: dict[str, Any]
  variables: Any  # pytree of numpy arrays, as saved


def save_model(directory, *, task: str, dataset: str, model_config: Mapping[str, Any], variables: Any,
               accuracy: Mapping[str, Any], meta: Mapping[str, Any], model: str = '',
               input_spec: Mapping[str, Any] | None = None,
               target: Mapping[str, Any] | None = None) -> Path:
  """Writes variables (fetched to host first) and model.json into `directory`; returns it.

  Synchronous: the orbax save has finished when this returns, so nothing runs in the background
  while a later seed is being timed.
  """
  import jax
  import orbax.checkpoint as ocp

  out = Path(directory).resolve()  # orbax wants absolute paths
  out.mkdir(parents=True, exist_ok=True)
  (out / MANIFEST).unlink(missing_ok=True)
  host = jax.device_get(variables)
  checkpointer = ocp.StandardCheckpointer()
  try:
    checkpointer.save(out / VARIABLES, host, force=True)
    checkpointer.wait_until_finished()
  finally:
    checkpointer.close()
  manifest = {
      'schema': SCHEMA, 'kind': KIND, 'task': task, 'dataset': dataset, 'model': model,
      'model_config': dict(model_config), 'input': dict(input_spec or {}),
      'target': dict(target or {}), 'accuracy': dict(accuracy), 'meta': dict(meta),
      'variables': VARIABLES, 'variables_format': 'orbax StandardCheckpointer (pytree of arrays)',
  }
  if jax.process_index() == 0:
    atomic.atomic_write_json(out / MANIFEST, summary_lib.jsonable(manifest))
  return out


def model_dir(path) -> Path:
  """`path` itself when it holds model.json, else its `model/` (a training run's --output_dir)."""
  path = Path(path)
  for candidate in (path, path / RUN_SUBDIR):
    if (candidate / MANIFEST).is_file():
      return candidate
  raise ResultsError(f'--checkpoint={path}: no {MANIFEST} there or in {path / RUN_SUBDIR}; pass a '
                     'training --output_dir (its model/ is written after the first seed) or the '
                     'model directory itself')


def read_manifest(directory) -> dict[str, Any]:
  path = Path(directory) / MANIFEST
  try:
    manifest = json.loads(path.read_text(encoding='utf-8'))
  except OSError as err:
    raise ResultsError(f'cannot read {path}: {err.strerror or err}') from err
  except ValueError as err:
    raise ResultsError(f'{path}: not valid JSON ({err})') from err
  if not isinstance(manifest, dict) or manifest.get('kind') != KIND or manifest.get('schema') != SCHEMA:
    raise ResultsError(f'{path}: not a dawnjax model manifest of schema {SCHEMA}')
  for key in ('task', 'dataset', 'model_config'):
    if key not in manifest:
      raise ResultsError(f'{path}: missing {key!r}')
  return manifest


def load_model(directory) -> SavedModel:
  """Reads a model directory (or a run's --output_dir holding model/): manifest + host variables."""
  import orbax.checkpoint as ocp

  where = model_dir(directory).resolve()
  manifest = read_manifest(where)
  checkpointer = ocp.StandardCheckpointer()
  try:
    # No target: orbax restores the saved tree as numpy arrays, so no model code is needed here.
    variables = checkpointer.restore(where / manifest.get('variables', VARIABLES))
  except Exception as err:  # orbax raises many types for a damaged or missing checkpoint
    raise ResultsError(f'{where / VARIABLES}: cannot restore the variables ({type(err).__name__}: '
                       f'{err})') from err
  finally:
    checkpointer.close()
  return SavedModel(where, manifest, variables)


def export_trained(workload, state, directory, *, seed: int, final_metrics: Mapping[str, float],
                   meta: Mapping[str, Any]) -> Path | None:
  """Saves `workload.inference_model(state)` to `directory`; None when the task has none yet."""
  try:
    _, variables, info = workload.inference_model(state)
  except NotImplementedError:
    return None
  accuracy = {'seed': seed, 'final_metrics': dict(final_metrics),
              'protocol': 'the training run\'s final evaluation (may include test-time augmentation); '
                          'the inference benchmark measures the served model itself (meta.protocol)'}
  return save_model(directory, task=info['task'], dataset=info['dataset'], model=info.get('model', ''),
                    model_config=info['model_config'], variables=variables, accuracy=accuracy,
                    meta={**dict(meta), 'protocol': info.get('protocol', ''),
                          **({'output': info['output']} if 'output' in info else {})},
                    input_spec=info.get('input'), target=info.get('target'))
