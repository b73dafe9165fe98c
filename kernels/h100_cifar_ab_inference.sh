#!/usr/bin/env bash
# One GPU, cifar10_jpeg: max-pool A/B (window vs reshape, 20 seeds each, same process setup),
# tanh GELU on top, then batch-1 inference latency of the reshape run's exported first seed.
# Run from the repo root with .data/cifar10-jpeg.tar.gz present; writes under $OUT.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; R=/tmp/runs; mkdir -p $R
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.limit --format=csv,noheader
run() { name=$1; shift; python3 -m dawnjax.experiments.cifar10 --data_dir=.data/cifar10-jpeg.tar.gz --cache_dir=/tmp/cache \
  --output_dir=$R/$name "$@" 2>&1 | grep -v '^I1' > $R/$name.log; echo "== $name: $*"; tail -3 $R/$name.log | sed -n 3p; }
run muon_window20 --flagfile=experiments/cifar10/airbench94_muon.flags --seeds=20 --pool_impl=window
run muon_reshape20 --flagfile=experiments/cifar10/airbench94_muon.flags --seeds=20 --pool_impl=reshape
run muon_reshape_tanh20 --flagfile=experiments/cifar10/airbench94_muon.flags --seeds=20 --pool_impl=reshape --gelu_approximate
python3 -m dawnjax.experiments.inference --task=cifar10 --checkpoint=$R/muon_reshape20 \
  --data_dir=.data/cifar10-jpeg.tar.gz --cache_dir=/tmp/cache --output_dir=$R/inference 2>&1 | grep -v '^I1' > $R/inference.log
tail -25 $R/inference.log
for f in $R/*/summary.json; do python3 - "$f" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
if 'accuracy' not in s: sys.exit()
a = s['accuracy']; t = s['timed_seconds']
print(f"{sys.argv[1].split('/')[-2]:20s} seeds {s['seeds']:3d} acc {a['mean']:.2f}±{a['std']:.2f} timed {t['mean']:.3f}±{t['std']:.3f} "
      f"compile {s['compile_seconds']:.1f} wall {s['wall_seconds']:.1f} mfu {s['mfu'] or 0:.3f} tflops {s['achieved_tflops']:.1f}")
PY
done | tee $OUT/table.txt
tar czf $OUT/runs.tgz --exclude='*/model/*' --exclude='*/exported/*' -C $R .
