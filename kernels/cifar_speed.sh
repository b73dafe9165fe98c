#!/usr/bin/env bash
# CIFAR-10 (cifar10_jpeg) on one GPU: the recorded 20-seed run, speed variants, a profile, and
# cold/warm-cache end-to-end wall time. Run from the repo root with .data/cifar10-jpeg.tar.gz present.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; R=/tmp/runs; mkdir -p $R
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,power.limit --format=csv
run() { name=$1; shift; python3 -m dawnjax.experiments.cifar10 --data_dir=.data/cifar10-jpeg.tar.gz --cache_dir=/tmp/cache \
  --output_dir=$R/$name "$@" 2>&1 | grep -v '^I1' > $R/$name.log; echo "== $name: $*"; tail -3 $R/$name.log | sed -n 3p; }
# Cold start, no compile cache (data decode included) then warm persistent compile cache.
rm -rf /tmp/cache /tmp/jaxcache
run e2e_cold --flagfile=experiments/cifar10/fast.flags --seeds=1 --noeval_every_epoch --notensorboard
run e2e_cache_fill --flagfile=experiments/cifar10/fast.flags --seeds=1 --noeval_every_epoch --notensorboard --compilation_cache_dir=/tmp/jaxcache
run e2e_cache_warm --flagfile=experiments/cifar10/fast.flags --seeds=1 --noeval_every_epoch --notensorboard --compilation_cache_dir=/tmp/jaxcache
run muon20 --flagfile=experiments/cifar10/airbench94_muon.flags --seeds=20
run sgd10 --flagfile=experiments/cifar10/airbench94.flags --seeds=10
run gelu_tanh --flagfile=experiments/cifar10/airbench94_muon.flags --seeds=10 --gelu_approximate
run muon_7ep --flagfile=experiments/cifar10/airbench94_muon.flags --seeds=10 --epochs=7
run profile --flagfile=experiments/cifar10/airbench94_muon.flags --seeds=1 --profile_epochs=3:4
for f in $R/*/summary.json; do python3 - "$f" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); a = s['accuracy']; t = s['timed_seconds']
print(f"{sys.argv[1].split('/')[-2]:16s} seeds {s['seeds']:3d} acc {a['mean']:.2f}±{a['std']:.2f} timed {t['mean']:.3f}±{t['std']:.3f} "
      f"compile {s['compile_seconds']:.1f} data {s['data_load_seconds']:.1f} wall {s['wall_seconds']:.1f} "
      f"mfu {s['mfu'] or 0:.3f} tflops {s['achieved_tflops']:.1f} train {s['breakdown_seconds_mean']}")
PY
done | tee $OUT/table.txt
tar czf $OUT/profile.tgz -C $R/profile tensorboard/profile
tar czf $OUT/runs.tgz --exclude=profile/tensorboard/profile -C $R .
