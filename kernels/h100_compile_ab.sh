#!/usr/bin/env bash
# One GPU, cifar10_jpeg, fast.flags, 1 seed per process: end-to-end wall from a cold start with
# the programs compiled one after another vs on 4 threads, XLA autotuning level 1 (fewer conv
# algorithm trials), and the warm persistent compilation cache path.
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
ENVV=; run threads1 --compile_threads=1
ENVV=; run threads4 --compile_threads=4
ENVV=XLA_FLAGS=--xla_gpu_autotune_level=1; run threads4_at1 --compile_threads=4
rm -rf /tmp/jaxcache
ENVV=; run cache_fill --compile_threads=4 --compilation_cache_dir=/tmp/jaxcache
ENVV=; run cache_warm --compile_threads=4 --compilation_cache_dir=/tmp/jaxcache
tar czf $OUT/runs.tgz -C $R .
