#!/usr/bin/env bash
# One GPU, cifar10_jpeg, fast.flags, 1 seed per process: end-to-end wall from a cold start with
# XLA's default autotuning vs level 1 (fewer conv algorithm trials), and the warm persistent
# compilation cache path. (The recorded run also compared --compile_threads=1/4, a flag removed
# since because it gave no gain.)
# Run from the repo root with .data/cifar10-jpeg.tar.gz present; writes under $OUT.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; R=/tmp/runs; mkdir -p $R
python3 -c "from dawnjax.data.cifar10 import load_cifar10; load_cifar10('.data/cifar10-jpeg.tar.gz', cache_dir='/tmp/cache')"
run() { name=$1; shift; /usr/bin/time -f "$name process wall %e s" env $ENVV python3 -m dawnjax.experiments.cifar10 \
  --flagfile=experiments/cifar10/fast.flags --data_dir=.data/cifar10-jpeg.tar.gz --cache_dir=/tmp/cache --seeds=1 \
  --noeval_every_epoch --notensorboard --noexport_model --output_dir=$R/$name "$@" 2>&1 | grep -v '^[IW]1' > $R/$name.log
  tail -1 $R/$name.log; python3 - $R/$name/summary.json $name <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:14s} acc {s['accuracy']['mean']:.2f} timed {s['timed_seconds']['mean']:.3f} compile {s['compile_seconds']:.1f} "
      f"data {s['data_load_seconds']:.1f} wall {s['wall_seconds']:.1f}")
PY
}
ENVV=; run autotune4 --xla_gpu_autotune_level=4
ENVV=; run autotune1 --xla_gpu_autotune_level=1
rm -rf /tmp/jaxcache
ENVV=; run cache_fill --compilation_cache_dir=/tmp/jaxcache
ENVV=; run cache_warm --compilation_cache_dir=/tmp/jaxcache
tar czf $OUT/runs.tgz -C $R .
