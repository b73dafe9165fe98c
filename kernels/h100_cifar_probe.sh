#!/usr/bin/env bash
# First H100 call: environment probe + CIFAR-10 (cifar10_jpeg) runs of both recipes.
# Usage on the device machine (repo root, .data/cifar10-jpeg.tar.gz carried): bash kernels/h100_cifar_probe.sh
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,power.limit --format=csv
python3 -c "import jax, flax, optax, absl, numba, PIL, orbax.checkpoint as oc, tensorboard, psutil; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'orbax', oc.__version__, 'numba', numba.__version__, 'tb', tensorboard.__version__, jax.devices())"
mkdir -p /tmp/runs
run() { name=$1; shift; python3 -m dawnjax.experiments.cifar10 --data_dir=.data/cifar10-jpeg.tar.gz --cache_dir=/tmp/cache \
  --output_dir=/tmp/runs/$name "$@" 2>&1 | grep -v '^I1' | tee $OUT/$name.log; }
run sgd --flagfile=experiments/cifar10/airbench94.flags --seeds=${SEEDS:-5}
run muon --flagfile=experiments/cifar10/airbench94_muon.flags --seeds=${SEEDS:-5}
tar czf $OUT/runs.tgz -C /tmp/runs .
