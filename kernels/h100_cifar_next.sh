#!/usr/bin/env bash
# The CIFAR-10 measurements planned for the next GPU session (the 2026-11-23 third session lost its
# device after one call). Calls of ~5-6 minutes on one H100, each under the 600 s call limit:
#   bash kernels/h100_cifar_next.sh ab           # 2 (the 20-seed A/B first: the numbers that decide)
#   bash kernels/h100_cifar_next.sh profile      # 1
#   bash kernels/h100_cifar_next.sh wall         # 3 + 4
#   (profile_ab = profile then ab, for a call without the time pressure)
#   RECIPE="--flagfile=... [flags]" bash kernels/h100_cifar_next.sh round2   # 5 + 1 + 3 + 4 on RECIPE
#   bash kernels/h100_cifar_next.sh prune   # RECIPE=fast.flags with/without --prune_frozen_grads, wall
#   RECIPE=--flagfile=experiments/cifar10/fast.flags bash kernels/h100_cifar_next.sh final   # 7.15 epochs, profile
#   RECIPE=--flagfile=experiments/cifar10/fast.flags bash kernels/h100_cifar_next.sh next    # ~5 min
#   RECIPE=--flagfile=experiments/cifar10/fast.flags bash kernels/h100_cifar_next.sh final2  # ~3 min
#   RECIPE=--flagfile=experiments/cifar10/fast.flags bash kernels/h100_cifar_next.sh warm3   # ~2 min
#   RECIPE=--flagfile=experiments/cifar10/fast.flags bash kernels/h100_cifar_next.sh final4  # ~3 min
#   RECIPE=--flagfile=experiments/cifar10/fast.flags bash kernels/h100_cifar_next.sh wall6   # ~4 min
#   RECIPE=--flagfile=experiments/cifar10/fast.flags bash kernels/h100_cifar_next.sh warm6   # ~2 min
#   OLD=../old RECIPE=--flagfile=experiments/cifar10/fast.flags bash kernels/h100_cifar_next.sh wall7   # ~5 min
#   TOG=../.snap_tog OLD=../.snap_old RECIPE=--flagfile=experiments/cifar10/fast.flags bash kernels/h100_cifar_next.sh together_warm20   # ~7 min
#   RECIPE="..." bash kernels/h100_cifar_next.sh round3   # 7.0 and 7.15 epochs over 20 seeds, then 3 + 4
# 'ab' was measured on 2026-11-23 (fourth session, experiments/results/cifar10_jpeg/
# h100_2026-11-23_bn_pool_hiverge): argmax -3.5%, fused BN -0.2%, both -4.8%, hiverge -4.9%.
# Run from the repo root (a `git archive` snapshot with .data/cifar10-jpeg.tar.gz); output under $OUT.
#  1. Per-kernel profiles with the optimised HLO (each kernel named by its JAX op): fast.flags vs
#     --pool_impl=argmax vs --bn_impl=fused, to attribute the 19.5% reductions and 17.7% elementwise.
#  2. 20-seed A/B, one process each, same call: fast.flags, + argmax pool, + fused BatchNorm,
#     + both, hiverge.flags. Predictions: argmax -6..-9% (the pool backward's compare, select and pad
#     passes, ~0.9 ms of 6.6 ms per step, become one pass); fused BN 0..-10% (7 -> 4 reductions
#     per layer, no saved pre-activation; depends on how XLA already fused them); hiverge -6%
#     (376k instead of 400k examples) if its accuracy holds at >= 90.5%.
#  3. Compile: Triton GEMM autotuning off (cuBLAS heuristics) vs on; cold and warm-cache wall with
#     the warm-up execution (seed 0's first epoch no longer pays first-execution costs).
#  4. Served model latency: 'host' vs 'host_direct' vs 'device' input modes.
#  5. round2: hiverge.flags + argmax pool + fused BatchNorm over 20 seeds (predicted ~-4.5% again,
#     if the two levers add to hiverge's as they did to fast.flags), and the same at 7.3 instead of
#     7.63 epochs (-4% steps; the accuracy margin over 90.5 is ~0.18 points).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p $OUT/hlo
part=${1:?usage: h100_cifar_next.sh ab|profile|profile_ab|wall|round2|round3|prune|final|next|final2|warm3|final4|wall6|warm6|wall7|wall7b|compile7|compile7b|compile7c|loop7|infer7|convfusion7|profile7|poolbwd7|probe8|infer8|whiten8|nspad8|final8|gelu8|slice8|fold9|cmdbuf9|serve9|fresh9|serve9b|serve9c|igemm10|igemm10b|igemm10c|whiten11|serve11|whiten11b|whiten11c|wall11|wall11b|wall11c|h100_12|pool12|chunk12|wall12|chunk12b|whiten12|whiten12b|rows13|igemm13|trace13|queue13|hybrid13|spin13|queue14|cold15|autotune16|errata17|final18|together19|together20|warm20|together_warm20|final21|gc22|pinned23|staged24|graph25|default26|graph27|final28|overlap29|nodes30|copies30|copies31|affinity32|affinity33|confirm34}
RECIPE=${RECIPE:---flagfile=experiments/cifar10/airbench94_muon_fast.flags}
# profile NAME FLAGS...: one seed with epochs 3-4 traced and XLA's optimised epoch program dumped (the largest
# jit_*_fn module: the pruned epoch program; steps_fn was the queued step programs of commits 60f1164-e45805a,
# measured in parts queue13/hybrid13 and reverted);
# $OUT/profile_NAME.md names each kernel by its JAX op.
profile() {
  local name=$1; shift
  echo "prof_$name 1 -- $* --profile_epochs=3:4" > /tmp/p_$name.txt
  XLA_FLAGS="--xla_dump_to=/tmp/hlo_$name --xla_dump_hlo_as_text --xla_dump_hlo_module_re=.*(epoch_fn|steps_fn).*" \
    bash kernels/h100_cifar_speed_ab.sh /tmp/p_$name.txt
  local H=$(ls -S /tmp/hlo_$name/*_fn*after_optimizations.txt | grep -v buffer | head -1)
  python3 kernels/trace_summary.py $OUT/runs/prof_$name/tensorboard/profile --per=${PER:-auto} --top=45 --hlo=$H \
    > $OUT/profile_$name.md
  head -12 $OUT/profile_$name.md; gzip -c $H > $OUT/hlo/epoch_$name.txt.gz
  rm -rf $OUT/runs/prof_$name
}
# startup_probes OPTS...: one start-up probe per argument ('' = plain), appended to
# $OUT/startup_probe.txt. --overlap_backend existed only from 8e9229e to 5c625c6 (reverted), where
# parts wall7 and wall7b ran.
startup_probes() {
  for opt in "$@"; do
    echo "== startup_probe $opt" >> $OUT/startup_probe.txt
    XLA_PYTHON_CLIENT_PREALLOCATE=false python3 kernels/startup_probe.py --data_dir=.data/cifar10-jpeg.tar.gz \
      --cache_dir=/tmp/cache $opt 2>&1 | grep -v '^[IW]1' >> $OUT/startup_probe.txt
  done
}
# logged_compile DIR NAME ENV...: one cold seed of $RECIPE with the given log environment; its log
# lands in $OUT/DIR/NAME.log for kernels/compile_log_summary.py.
logged_compile() {
  local dir=$1 name=$2; shift 2
  mkdir -p $OUT/$dir
  echo "$name 1 TF_CPP_MIN_LOG_LEVEL=0 $* -- $RECIPE" | bash kernels/h100_cifar_speed_ab.sh
  cp $OUT/runs/$name.log $OUT/$dir/$name.log
}
# train_served: one seed of $RECIPE into $R/train, whose model/ the inference parts then serve.
train_served() {
  mkdir -p $R
  python3 -m dawnjax.experiments.cifar10 $RECIPE --data_dir=.data/cifar10-jpeg.tar.gz --cache_dir=/tmp/cache \
    --seeds=1 --noeval_every_epoch --notensorboard --output_dir=$R/train 2>&1 | grep -v '^[IW]1' | tail -2
}
# serve LOGDIR NAME FLAGS...: the inference benchmark of $R/train (device and host input) into
# $R/NAME; its log and summary land in LOGDIR as NAME.log and NAME.summary.json. XLA settings
# come from the caller's environment (XLA_FLAGS=... serve ...).
serve() {
  local dir=$1 name=$2; shift 2
  mkdir -p $dir
  python3 -m dawnjax.experiments.inference --task=cifar10 --checkpoint=$R/train --data_dir=.data/cifar10-jpeg.tar.gz \
    --cache_dir=/tmp/cache --output_dir=$R/$name --latency_modes=device,host "$@" 2>&1 | grep -v '^[IW]1' > $dir/$name.log
  echo "== $name: ${XLA_FLAGS:+XLA_FLAGS=$XLA_FLAGS }$*"; tail -9 $dir/$name.log
  cp $R/$name/inference_summary.json $dir/$name.summary.json
}
# trace_requests DIR TAG FLAGS...: kernels/latency_trace.py on $RECIPE (fresh weights), 300 calls per row after 300
# untraced, with the benchmark's convolution command buffers, into DIR/trace.log and DIR/trace.json; prints its table.
trace_requests() {
  local dir=$1 tag=$2; shift 2
  XLA_FLAGS=--xla_gpu_enable_command_buffer=+CONVOLUTION python3 kernels/latency_trace.py $RECIPE --calls=300 \
    --warmup=300 --trace_dir=/tmp/lt$tag --json=$dir/trace.json "$@" > $dir/trace.log 2>&1
  grep -v '^[IW]1' $dir/trace.log | head -14
}
# abba A_NAME "A_SPEC" B_NAME "B_SPEC": 20 seeds each in the order A, B, B_b, A_b (machines of one
# kind differ by ~6%, drift within a call is linear-ish); a SPEC is "[ENV=VAL ...] -- FLAGS".
abba() {
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
$1 20 $2
$3 20 $4
${3}_b 20 $4
${1}_b 20 $2
VARIANTS
}
# wall_rows HITS: the variant lines of the wall protocol: one cold process of $RECIPE without a compile
# cache, one that fills JAX's persistent cache, then HITS processes that load from it.
wall_rows() {
  echo "cold1 1 -- $RECIPE"
  echo "cache_fill 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache"
  for i in $(seq "$1"); do echo "cache_warm$i 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache"; done
}
# served_latency_pair NAME: one seed of $RECIPE trained into /tmp/NAME, then its batch-1 latency twice in a
# row with convolution command buffers on; logs under $OUT/NAME.
served_latency_pair() {
  R=/tmp/$1; train_served
  local off="--nowrite_exported --throughput_batch=0 --bound_items=0"
  serve $OUT/$1 cb --conv_command_buffers $off
  serve $OUT/$1 cb_b --conv_command_buffers $off
}
# imports_from LABEL DIR: the rows that run another snapshot's code as PYTHONSAFEPATH=1 PYTHONPATH=DIR must import
# dawnjax from DIR (`python -m` otherwise puts the working directory, this snapshot, first); says where, fails if not.
imports_from() {
  local where=$(PYTHONSAFEPATH=1 PYTHONPATH=$2 python3 -c 'import dawnjax; print(dawnjax.__file__)')
  echo "$1 rows import $where"; case $where in $2/*) ;; *) echo "$1 rows would not run $2"; return 1;; esac
}
if [ "$part" = round2 ]; then
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
r2_20 20 -- $RECIPE
r2_e73_20 20 -- $RECIPE --epochs=7.3
VARIANTS
fi
if [ "$part" = prune ]; then
  # --prune_frozen_grads (default on): the new fast.flags with and without it, then the wall rows.
  # Prediction: -4..-7% (block1's input gradient, the whitening kernel's filter gradient and the
  # 0.19 ms bias reduction per step go; the profile had them at ~0.4 of 6.4 ms).
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
prune20 20 -- $RECIPE
noprune20 20 -- $RECIPE --noprune_frozen_grads
cold1 1 -- $RECIPE
cache_fill 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache
cache_warm 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache
VARIANTS
fi
if [ "$part" = next ]; then
  # Measured 2026-11-23 (fifth session, results/cifar10_jpeg/h100_2026-11-23_next). Predictions: Triton GEMM off -3..-4 s compile and
  # timed within noise (the Newton-Schulz GEMMs are 4% of kernel time); --eval_batch_size=1536 lets
  # the eval programs reuse the training forward convolutions' autotuning (-2..-4 s compile) for
  # ~+0.4% timed (7.5% padding in the evaluation); 7.0 epochs -2.4% timed at ~90.50%. base20 itself
  # measures step-granular pruning: predicted 1.026 -> ~1.012 s (-1.4%). cold1: with
  # --noeval_every_epoch the plain eval program is no longer compiled: cold wall 41.9 -> ~38 s.
  # cache_warm: the wall breakdown (start-up, data, program loading, warm-up) of the 10.6 s.
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
base20 20 -- $RECIPE
notriton20 20 XLA_FLAGS=--xla_gpu_enable_triton_gemm=false -- $RECIPE
ebs1536_20 20 -- $RECIPE --eval_batch_size=1536
e70_20 20 -- $RECIPE --epochs=7.0
cold1 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache
cache_warm 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache
VARIANTS
fi
if [ "$part" = final2 ]; then
  # 'next' measured (2026-11-23 fifth session): step-granular pruning 1.0130 s; Triton GEMM off
  # 1.0114 s and compile -5.4 s; eval batch 1536 1.0142 s and compile -2.4 s (fast.flags now sets
  # both); 7.0 epochs 0.9906 s at 90.53%. Here: the new fast.flags over 20 seeds (predicted ~1.012 s,
  # compile ~28 s), cold and warm wall, LLVM module compilation in parallel (cold compile), and
  # where the first seconds of a process go (kernels/startup_probe.py).
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
final20 20 -- $RECIPE
cold1 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache2
cache_warm 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache2
llvmpar1 1 XLA_FLAGS=--xla_gpu_enable_llvm_module_compilation_parallelism=true -- $RECIPE
VARIANTS
  python3 kernels/startup_probe.py --data_dir=.data/cifar10-jpeg.tar.gz --cache_dir=/tmp/cache 2>&1 \
    | grep -v '^[IW]1' | tee $OUT/startup_probe.txt
fi
if [ "$part" = warm3 ]; then
  # final2 measured: fast.flags 1.0241 s 90.57%, compile 31.3 s; cold wall 32.5 s, warm 8.9 s
  # (start-up 2.1, data 1.2, compile 4.4 of which trace+lower ~2.5); the probe put 1.45 s of the
  # data load in the first upload alone (a second upload of the same 185 MB: 0.03 s).
  # Predictions: the executable cache (hit) cuts the warm compile 4.4 -> ~1.5 s (deserialise +
  # 2-step warm-up); without it (--noexecutable_cache) JAX's cache alone ~4 s. If the first upload's
  # cost is the 75% preallocation, XLA_PYTHON_CLIENT_PREALLOCATE=false or MEM_FRACTION=.25 removes
  # most of it (warm wall ~5-6 s).
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
cold1 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache3
warm_exe 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache3
warm_jaxonly 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache3 --noexecutable_cache
warm_exe_noprealloc 1 XLA_PYTHON_CLIENT_PREALLOCATE=false -- $RECIPE --compilation_cache_dir=/tmp/jaxcache3
warm_exe_frac25 1 XLA_PYTHON_CLIENT_MEM_FRACTION=.25 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache3
VARIANTS
  for v in "default:" "tiny_first:--tiny_first" "noprealloc:XLA_PYTHON_CLIENT_PREALLOCATE=false" \
           "frac25:XLA_PYTHON_CLIENT_MEM_FRACTION=.25"; do
    name=${v%%:*}; arg=${v#*:}; envs=""; flags=""
    case "$arg" in --*) flags=$arg ;; *=*) envs=$arg ;; esac
    echo "== probe $name"
    env $envs python3 kernels/startup_probe.py --data_dir=.data/cifar10-jpeg.tar.gz --cache_dir=/tmp/cache $flags 2>&1 \
      | grep -v '^[IW]1'
  done | tee $OUT/startup_probe.txt
fi
if [ "$part" = final4 ]; then
  # warm3 measured: the executable cache hit trains identically (same losses, 90.65%), compile
  # 6.1 -> 1.8 s, warm wall 12.0 -> 7.8 s; + XLA_PYTHON_CLIENT_PREALLOCATE=false 6.5 s (data 1.7 ->
  # 0.3 s). fast.flags now sets --nogpu_preallocate; the warm-up is whole epochs again (2 steps let
  # 0.12 s of first-execution cost into a cold run's seed 0). Predictions: 20 seeds ~1.02 s at
  # ~90.57%; warm wall ~6.5 s with the executable cache, ~10.5 s with JAX's cache alone; cold ~31 s.
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
final20 20 -- $RECIPE
cold1 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache4
warm_exe 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache4
warm_jaxonly 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache4 --noexecutable_cache
VARIANTS
fi
if [ "$part" = wall6 ]; then
  # Sixth session. Cold: init + the first epoch program compile on a worker thread while the other
  # programs are traced and lowered, then those compile side by side on the first program's
  # autotuning (cifar10.py compile): predicted compile 30.5 -> ~23-24 s. Warm: the executable cache
  # deserialises its programs on 4 threads: predicted loading 1.2 -> ~0.5 s (startup_probe's
  # --exe_cache_dir rows time 1 vs 4 threads). final20 checks that timed seconds did not move
  # (~1.02 s). level0: autotuning off with Triton GEMM off (level 0 was unusable with Triton on).
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
cold1 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache6
warm_exe 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache6
warm_exe2 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache6
final20 20 -- $RECIPE
VARIANTS
  python3 kernels/startup_probe.py --data_dir=.data/cifar10-jpeg.tar.gz --cache_dir=/tmp/cache \
    --exe_cache_dir=/tmp/jaxcache6/dawnjax_executables 2>&1 | grep -v '^[IW]1' | tee $OUT/startup_probe.txt
  echo "level0_cold1 1 -- $RECIPE --xla_gpu_autotune_level=0" | AB_TIMEOUT=${LEVEL0_TIMEOUT:-100} \
    bash kernels/h100_cifar_speed_ab.sh
fi
if [ "$part" = warm6 ]; then
  # wall6 measured (sixth session, call 1): warm wall 4.3 / 4.4 s (executable cache loaded on 4
  # threads: 0.48 s vs 0.93 s on 1), cold 33.4 s as the machine's first process but compile 20.3 s in
  # a later process without any cache. Here: how repeatable the warm wall is (5 processes), and the
  # cold wall of a process that is not the machine's first (predicted ~24 s).
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
cold1 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache7
cold_again 1 -- $RECIPE
warm_exe_a 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache7
warm_exe_b 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache7
warm_exe_c 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache7
warm_exe_d 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache7
warm_exe_e 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache7
VARIANTS
fi
if [ "$part" = wall7 ]; then
  # Seventh session (any one GPU): commit 8e9229e started the backend on a thread while Flax/optax
  # and the model imported (common.start_backends; predicted warm start-up -0.2..-0.4 s; reverted
  # after wall7b measured no gain in the entry point). OLD=DIR is a snapshot of
  # the commit before, run through PYTHONPATH from this directory; the warm rows alternate old/new
  # so machine drift hits both. Then the start-up probe without/with the overlap, and 20 seeds of
  # the new code (timed seconds on this GPU; the change must leave them alone).
  OLD=${OLD:?OLD=path of a snapshot of the previous commit}
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
new_cold1 1 -- $RECIPE --compilation_cache_dir=/tmp/jc_new
old_cold1 1 PYTHONPATH=$OLD -- $RECIPE --compilation_cache_dir=/tmp/jc_old
old_warm_a 1 PYTHONPATH=$OLD -- $RECIPE --compilation_cache_dir=/tmp/jc_old
new_warm_a 1 -- $RECIPE --compilation_cache_dir=/tmp/jc_new
old_warm_b 1 PYTHONPATH=$OLD -- $RECIPE --compilation_cache_dir=/tmp/jc_old
new_warm_b 1 -- $RECIPE --compilation_cache_dir=/tmp/jc_new
old_warm_c 1 PYTHONPATH=$OLD -- $RECIPE --compilation_cache_dir=/tmp/jc_old
new_warm_c 1 -- $RECIPE --compilation_cache_dir=/tmp/jc_new
VARIANTS
  startup_probes '' --overlap_backend '' --overlap_backend
  cat $OUT/startup_probe.txt
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
final20 20 -- $RECIPE
VARIANTS
fi
if [ "$part" = wall7b ]; then
  # wall7 measured on an H200 (seventh session, call 1): the probe gained 0.20-0.23 s from the
  # backend thread, but three alternating old/new warm pairs did not show it (old 5.4-6.0 s, new
  # 5.6-6.1 s): too few pairs for the machine's +-0.3 s. Here eight pairs, two more probe pairs, and
  # what the warm-up costs and buys on a cache hit (--nowarm_up: seed 0 pays first-execution costs).
  # Run at commit 5e1d15b (OLD = 631abc3); the probe's --overlap_backend existed there.
  OLD=${OLD:?OLD=path of a snapshot of the previous commit}
  {
    echo "new_cold1 1 -- $RECIPE --compilation_cache_dir=/tmp/jc_new"
    echo "old_cold1 1 PYTHONPATH=$OLD -- $RECIPE --compilation_cache_dir=/tmp/jc_old"
    for i in 1 2 3 4 5 6 7 8; do
      echo "old_warm_$i 1 PYTHONPATH=$OLD -- $RECIPE --compilation_cache_dir=/tmp/jc_old"
      echo "new_warm_$i 1 -- $RECIPE --compilation_cache_dir=/tmp/jc_new"
    done
    for i in 1 2; do
      echo "new_nowarmup_$i 1 -- $RECIPE --compilation_cache_dir=/tmp/jc_new --nowarm_up"
      echo "new_warm_x$i 1 -- $RECIPE --compilation_cache_dir=/tmp/jc_new"
    done
  } | bash kernels/h100_cifar_speed_ab.sh
  startup_probes '' --overlap_backend '' --overlap_backend
fi
if [ "$part" = compile7 ]; then
  # Where the ~15-20 s of the cold epoch-program compile go (goal: cold wall <= 20 s): one cold seed
  # with XLA's scoped timers and autotuner logs (VLOG 1), and the autotuning results dumped (how
  # many convolutions/fusions were tuned). kernels/compile_log_summary.py totals the log.
  logged_compile compile7 vlog1 TF_CPP_VMODULE=gpu_compiler=1,nvptx_compiler=1,conv_algorithm_picker=1,gemm_algorithm_picker=1,autotuner_util=1,gemm_fusion_autotuner=1,autotuner_compile_util=1 \
    XLA_FLAGS=--xla_gpu_dump_autotune_results_to=$OUT/compile7/autotune_results.txt
  python3 kernels/compile_log_summary.py $OUT/compile7/vlog1.log | tee $OUT/compile7/summary.txt
  # The XLA GPU flags this build knows (an unknown flag in XLA_FLAGS aborts the process).
  python3 - > $OUT/compile7/xla_gpu_flags.txt <<'PY'
import glob, os, re, jax, jaxlib
roots = [os.path.dirname(jaxlib.__file__)] + [os.path.dirname(p) for p in glob.glob(os.path.join(os.path.dirname(os.path.dirname(jax.__file__)), 'jax_plugins', '*', '__init__.py'))]
names = set()
for root in roots:
  for so in glob.glob(os.path.join(root, '**', '*.so'), recursive=True):
    names |= set(re.findall(rb'xla_gpu_[a-z0-9_]+', open(so, 'rb').read()))
print('\n'.join(sorted(n.decode() for n in names)))
PY
  wc -l $OUT/compile7/xla_gpu_flags.txt
fi
if [ "$part" = compile7b ]; then
  # compile7 measured (H200): the cold epoch program spends 16.8 s in RunHloPasses and 1.1 s in
  # RunBackend; kernel compilation (321 PTX->cubin, 10 s of CPU) runs on 16 threads inside the
  # backend, so it is not the cost. The autotuner dumped 212 results: 164 fusions kept XLA's native
  # emitter and 8 took Triton (the fusion autotuner compiled and timed both), 23 cuBLASLt GEMMs,
  # 17 cuDNN convolutions. Predicted: the fusion autotuner off (every fusion native) cuts most of
  # the 16.8 s and costs <= 1% timed (8 of 172 fusions change); fewer GEMM/conv solutions saves less.
  # Cold processes, no cache, 20 seeds each (timed seconds must not move).
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
base20 20 -- $RECIPE
nofusiontune20 20 XLA_FLAGS=--xla_gpu_experimental_enable_fusion_autotuner=false -- $RECIPE
maxsol2_20 20 XLA_FLAGS=--xla_gpu_autotune_max_solutions=2 -- $RECIPE
VARIANTS
fi
if [ "$part" = compile7c ]; then
  # compile7b measured (H200, 20 seeds each): fusion autotuner off -1.3 s of the epoch program's
  # 15.3 s (timed +0.4%); --xla_gpu_autotune_max_solutions=2 nothing. So which HLO passes hold the
  # 15 s: one cold seed with hlo_pass_pipeline's per-pass log lines.
  logged_compile compile7c passes1 TF_CPP_VMODULE=hlo_pass_pipeline=1,gpu_compiler=1
  python3 kernels/compile_log_summary.py $OUT/compile7c/passes1.log --top=40 | tee $OUT/compile7c/summary.txt
  gzip $OUT/compile7c/passes1.log
fi
if [ "$part" = loop7 ]; then
  # The epoch program is a while loop over steps. XLA's default command buffers (this build:
  # CONDITIONAL, CUBLAS, CUBLASLT, CUDNN, CUSTOM_CALL, DYNAMIC_SLICE_FUSION, FUSION) capture each
  # step's kernels, but not the loop: the host reads the loop predicate back every step and then
  # launches the next step, and the GPU idles meanwhile (device busy 95.3% in the fourth-session
  # profile). WHILE puts the whole loop in one CUDA graph with a device-side condition. Predicted
  # -2..-5% timed. concurrent: graph regions of independent kernels run concurrently.
  CB=CONDITIONAL,CUBLAS,CUBLASLT,CUDNN,CUSTOM_CALL,DYNAMIC_SLICE_FUSION,FUSION
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
base20 20 -- $RECIPE
while20 20 XLA_FLAGS=--xla_gpu_enable_command_buffer=$CB,WHILE -- $RECIPE
while_conc20 20 XLA_FLAGS='--xla_gpu_enable_command_buffer=$CB,WHILE --xla_gpu_graph_enable_concurrent_region=true' -- $RECIPE
base20_again 20 -- $RECIPE
VARIANTS
fi
if [ "$part" = infer7 ]; then
  # Batch-1 latency of the served model (issue 6; goal <= 0.10 ms, measured 0.33-0.40 ms
  # device-resident on an H100, of which ~0.13 ms is device work). This build already puts
  # fusions, cuDNN and cuBLAS calls in command buffers (CUDA graphs) of >= 5 commands and updates
  # a graph whenever a buffer address changes (ALWAYS_UPDATE). Rows: command buffers off; graphs
  # from 1 command; SKIP_TEMP (temporaries at stable virtual addresses, so only the nodes that
  # touch the input and output are updated). Native function only, device and host input.
  R=/tmp/infer7; train_served
  off="--nowrite_exported --throughput_batch=0"
  serve $OUT/infer7 default $off
  XLA_FLAGS=--xla_gpu_enable_command_buffer= serve $OUT/infer7 cmdbuf_off $off
  XLA_FLAGS=--xla_gpu_graph_min_graph_size=1 serve $OUT/infer7 graph1 $off
  XLA_FLAGS=--xla_gpu_command_buffer_update_mode=SKIP_TEMP serve $OUT/infer7 skip_temp $off
  XLA_FLAGS="--xla_gpu_graph_min_graph_size=1 --xla_gpu_command_buffer_update_mode=SKIP_TEMP" \
    serve $OUT/infer7 graph1_skip_temp $off
fi
if [ "$part" = convfusion7 ]; then
  # XLA's experimental convolution fusion: convolutions become cuDNN graph fusions that can take
  # neighbouring elementwise ops (BatchNorm apply, activation) as prologue/epilogue, instead of
  # custom calls with separate elementwise kernels (21% of the step in the fourth-session profile).
  # Predicted: 0..-10% timed if it fuses, or a failure/slowdown (experimental). Capped at 150 s.
  AB_TIMEOUT=150 bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
base20 20 -- $RECIPE
convfusion20 20 XLA_FLAGS=--xla_gpu_experimental_enable_conv_fusion=true -- $RECIPE
convfusion_rt20 20 XLA_FLAGS='--xla_gpu_experimental_enable_conv_fusion=true --xla_gpu_use_runtime_fusion=true' -- $RECIPE
VARIANTS
fi
if [ "$part" = profile7 ]; then
  # Where fast.flags' step goes on the GPU at hand (the last profile is the fourth session's, on an
  # H100): epochs 3-4 of one seed traced, every kernel named by its JAX op from the optimised HLO.
  profile fast7 $RECIPE
fi
if [ "$part" = poolbwd7 ]; then
  # The argmax pool's backward written at the input's full size in one pass (gathered window
  # gradient and index) instead of on the cropped grid and then padded: the H200 profile showed
  # block2's pool backward as a select pass plus a pad pass (0.2 ms of a 4 ms step). Predicted
  # -1..-3% timed. OLD=DIR: snapshot of the commit before; ABBA order, 20 seeds each.
  OLD=${OLD:?OLD=path of a snapshot of the previous commit}
  abba old20 "PYTHONPATH=$OLD -- $RECIPE" new20 "-- $RECIPE"
fi
if [ "$part" = probe8 ]; then
  # Issue 6: one batch-1 call of the served model split into its floors (kernels/latency_probe.py),
  # with this build's command buffers and without. Issue 3: each convolution alone at the training
  # batch with zero-padded channel variants (kernels/conv_shapes_bench.py), under fast.flags' XLA
  # settings: are the few-channel layers the ones on Ampere-generation kernels, and would padding
  # them to 32 channels pay for its extra FLOPs?
  for setting in default cmdbuf_off; do
    flags=; [ $setting = cmdbuf_off ] && flags=--xla_gpu_enable_command_buffer=
    XLA_FLAGS="$flags" python3 kernels/latency_probe.py $RECIPE --label=$setting \
      --json=$OUT/latency_probe_$setting.json 2>&1 | grep -v '^[IW]1' | tee $OUT/latency_probe_$setting.txt
  done
  XLA_FLAGS="--xla_gpu_autotune_level=1 --xla_gpu_enable_triton_gemm=false" python3 kernels/conv_shapes_bench.py \
    2>&1 | grep -v '^[IW]1' | tee $OUT/conv_shapes.txt
fi
if [ "$part" = infer8 ]; then
  # Issue 6: the served model with its weights compiled in as constants (--weights=constants,
  # what the default 'auto' now picks for this model) against passing them with every call
  # (--weights=arguments, what infer7 measured: 0.358 ms device-resident). Predicted -0.05..-0.1 ms
  # per call (latency_probe: noop_vars - noop, baked vs rotating rows). ABBA; the first run also
  # writes and times the exported artifact and the throughput. Then the probe again
  # (repeatability) and the convolutions with bf16 outputs.
  R=/tmp/infer8; train_served
  off="--nowrite_exported --throughput_batch=0"
  serve $OUT/infer8 constants --weights=constants
  serve $OUT/infer8 arguments --weights=arguments $off
  serve $OUT/infer8 arguments_b --weights=arguments $off
  serve $OUT/infer8 constants_b --weights=constants $off
  python3 kernels/latency_probe.py $RECIPE --label=default 2>&1 | grep -v '^[IW]1' | tee $OUT/latency_probe_default.txt
  XLA_FLAGS="--xla_gpu_autotune_level=1 --xla_gpu_enable_triton_gemm=false" python3 kernels/conv_shapes_bench.py \
    2>&1 | grep -v '^[IW]1' | tee $OUT/conv_shapes.txt
fi
if [ "$part" = whiten8 ]; then
  # The whitening conv (3 -> 24 channels, 2x2) as elementwise multiply-adds fused with its bias,
  # GELU and the augmentation (--whiten_impl=elementwise) instead of a cuDNN conv + a GELU pass.
  # conv_shapes_bench (infer8): cuDNN's whitening forward 0.14 ms at batch 1536; call 9's profile:
  # the GELU after it 0.109 ms per step. Predicted -2..-4% timed, same accuracy. ABBA, 20 seeds.
  abba conv20 "-- $RECIPE" elementwise20 "-- $RECIPE --whiten_impl=elementwise"
fi
if [ "$part" = nspad8 ]; then
  # Two levers on top of fast.flags (now with --whiten_impl=elementwise), ABBA-style in one call:
  # - Muon's Newton-Schulz with the three 256 x 2304 filter banks batched into one iteration
  #   (code change; OLD=snapshot of the commit before it). Predicted -0.5..-1.5% (launch-bound GEMMs).
  # - --pad_channels=32: block1's first conv forward on inputs zero-padded 24 -> 32 channels
  #   (conv_shapes_bench: 0.23 -> 0.15 ms forward; the filter gradient stays unpadded). Predicted
  #   -1..-2% (the padded copy of the input costs some of the 0.08 ms).
  # Measured (call 5 of 2026-12-01): grouped Newton-Schulz +0.25%, padding -0.3..-0.55% (and its FLOP
  # count includes the zero channels); neither adopted, both reverted: --pad_channels and the grouped
  # iteration exist only in commits 67c4815 (grouped) and ee59437 (both), where this part can be re-run.
  OLD=${OLD:?OLD=path of a snapshot of the commit before grouped Newton-Schulz}
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
old20 20 PYTHONPATH=$OLD -- $RECIPE
ns20 20 -- $RECIPE
pad20 20 -- $RECIPE --pad_channels=32
pad20_b 20 -- $RECIPE --pad_channels=32
ns20_b 20 -- $RECIPE
old20_b 20 PYTHONPATH=$OLD -- $RECIPE
VARIANTS
fi
if [ "$part" = final8 ]; then
  # Where the step goes now (fast.flags with the elementwise whitening: GELU and cuDNN whitening
  # gone from the profile?), then the served model's weights as constants vs arguments once more
  # (infer8's ABBA was noisy: 0.325/0.417 vs 0.464/0.406 ms), device and host input, ABBA.
  mkdir -p $OUT/hlo
  profile fast8 $RECIPE
  R=/tmp/final8; train_served
  for name in constants arguments arguments_b constants_b; do
    serve $R $name --weights=${name%_b} --nowrite_exported --throughput_batch=0
  done
  (cd $R && tar czf $OUT/final8_inference.tgz */inference_summary.json *.log)
fi
if [ "$part" = gelu8 ]; then
  # The fused whitening pass (final8's profile: 0.156 ms per step for a 71 MB write, ~0.45 TB/s)
  # computes 12 multiply-adds and an exact (erf) GELU per output; is the erf what holds it back?
  # --gelu_approximate (tanh form; the blocks use SiLU, so only the whitening GELU changes).
  # Predicted 0..-1% timed; accuracy must stay >= 90.5 over 20 seeds. ABBA.
  abba erf20 "-- $RECIPE" tanh20 "-- $RECIPE --gelu_approximate"
fi
if [ "$part" = slice8 ]; then
  # The fused whitening pass read 12 f32 planes that XLA sliced from an f32 copy of the input and
  # wrote out first (final8's HLO: loop_slice_fusion, 71 MB). Slicing the bf16 input and widening
  # each slice where it is used (same values, bit for bit) halves or removes that. Predicted
  # 0..-1% timed. OLD=snapshot of the commit before; ABBA, 20 seeds.
  OLD=${OLD:?OLD=path of a snapshot of the previous commit}
  abba old20 "PYTHONPATH=$OLD -- $RECIPE" new20 "-- $RECIPE"
fi
if [ "$part" = fold9 ]; then
  # Block1's first conv (24 input channels: ~175 TFLOP/s, forward and filter gradient ~0.23 ms each
  # per step on an H200) with its horizontal taps gathered into 72 channels and run as a 3x1 conv
  # (--block1_conv1_impl=kw_folded). Predicted -2..-5% timed if cuDNN's 72-channel kernels run near
  # block1.conv2's 360 TFLOP/s (the gathering pass writes ~0.2 GB: ~0.06 ms); same accuracy (same
  # sums). ABBA, 20 seeds; then the convolutions alone (with the gathered variants) and the latency
  # probe's host rows with the result's read-back started at dispatch (copy_to_host_async).
  abba conv20 "-- $RECIPE" kwfold20 "-- $RECIPE --block1_conv1_impl=kw_folded"
  python3 kernels/latency_probe.py $RECIPE --label=default --json=$OUT/latency_probe9.json 2>&1 \
    | grep -v '^[IW]1' | tee $OUT/latency_probe9.txt
  XLA_FLAGS="--xla_gpu_autotune_level=1 --xla_gpu_enable_triton_gemm=false" timeout 200 \
    python3 kernels/conv_shapes_bench.py 2>&1 | grep -v '^[IW]1' | tee $OUT/conv_shapes9.txt
fi
if [ "$part" = cmdbuf9 ]; then
  # cuDNN convolutions recorded into XLA's command buffers (CUDA graphs) with the fusions around
  # them (--xla_gpu_enable_command_buffer=+CONVOLUTION; by default each conv is launched on its own
  # and splits the graph). The served batch-1 function is ~20 thunks of a few microseconds each, 6
  # of them convolutions: predicted -0.02..-0.06 ms per call if the launches between graphs are
  # what remains of the device time. The training step (~50 kernels, ~3.6 ms) predicted 0..-1%.
  # ABBA of training (20 seeds); then the probe with and without (same process order each time).
  CB=--xla_gpu_enable_command_buffer=+CONVOLUTION
  abba base20 "-- $RECIPE" cb20 "XLA_FLAGS=$CB -- $RECIPE"
  for label in conv_cmdbuf default conv_cmdbuf_b; do
    XLA_FLAGS=$([ "$label" = default ] || echo $CB) python3 kernels/latency_probe.py $RECIPE --label=$label \
      --json=$OUT/latency_probe9_$label.json 2>&1 | grep -v '^[IW]1' | tee $OUT/latency_probe9_$label.txt
  done
fi
if [ "$part" = serve9 ]; then
  # The inference benchmark with cuDNN convolutions in command buffers (--conv_command_buffers, now
  # the default) vs without, ABBA, on one seed of RECIPE (fast.flags, now with the same XLA flag in
  # training). cmdbuf9's probe: batch-1 p50 0.17-0.19 vs 0.22-0.24 ms with the weights compiled in.
  # The first row is the full benchmark (exported artifact, throughput): the headline figure.
  R=/tmp/serve9; train_served
  off="--nowrite_exported --throughput_batch=0"
  serve $OUT/serve9 cb --conv_command_buffers
  serve $OUT/serve9 nocb --noconv_command_buffers $off
  serve $OUT/serve9 nocb_b --noconv_command_buffers $off
  serve $OUT/serve9 cb_b --conv_command_buffers $off
fi
if [ "$part" = fresh9 ]; then
  # serve9: with convolutions in command buffers the benchmark's 'device' mode got slower (mean
  # 0.44-0.48 vs 0.32-0.34 ms) while 'host' got faster (0.77-0.88 vs 1.09-1.31 ms) and the bounds'
  # second pass over 1000 buffers was faster too (0.17-0.22 vs 0.27-0.35 ms). Suspect: the first
  # use of each new input buffer address costs a command-buffer update. The probe with 10,000 new
  # buffers timed twice, command buffers with convolutions on, off, on.
  CB=--xla_gpu_enable_command_buffer=+CONVOLUTION
  for label in conv_cmdbuf default conv_cmdbuf_b; do
    XLA_FLAGS=$([ "$label" = default ] || echo $CB) python3 kernels/latency_probe.py $RECIPE --label=$label \
      --fresh_items=10000 --calls=1000 --json=$OUT/latency_probe9f_$label.json 2>&1 | grep -v '^[IW]1' \
      | tee $OUT/latency_probe9f_$label.txt
  done
fi
if [ "$part" = serve9b ]; then
  # fresh9's probe found no first-use cost (10,000 new buffers: 0.17-0.19 ms with convolutions in
  # command buffers vs 0.28 without), unlike serve9's 'device' rows. Does the mode order matter (the
  # benchmark times 'device' first, right after compiling)? Each setting with device first and with
  # host first.
  R=/tmp/serve9b; train_served
  off="--nowrite_exported --throughput_batch=0 --bound_items=0"
  serve $OUT/serve9b cb --conv_command_buffers $off
  serve $OUT/serve9b nocb --noconv_command_buffers $off
  serve $OUT/serve9b cb_hostfirst --conv_command_buffers $off --latency_modes=host,device
  serve $OUT/serve9b nocb_hostfirst --noconv_command_buffers $off --latency_modes=host,device
fi
if [ "$part" = serve9c ]; then
  # serve9b: mode order does not matter. The difference from the probe: the benchmark kept every
  # 'device' result on device until the end (10,000 live buffers: a new output address per call, so
  # XLA updates its command buffers each call), where the probe drops each result. Now the harness
  # reads each result back after the clock stops. Predicted: 'device' with convolutions in command
  # buffers at the probe's 0.17-0.19 ms, below the 0.20-0.25 ms without. ABBA.
  R=/tmp/serve9c; train_served
  off="--nowrite_exported --throughput_batch=0 --bound_items=0"
  serve $OUT/serve9c cb --conv_command_buffers $off
  serve $OUT/serve9c nocb --noconv_command_buffers $off
  serve $OUT/serve9c nocb_b --noconv_command_buffers $off
  serve $OUT/serve9c cb_b --conv_command_buffers $off
fi
if [ "$part" = igemm10 ]; then
  # Block1's first conv as a Pallas implicit GEMM (models/implicit_gemm_conv.py) vs cuDNN, alone, over a
  # sweep of tilings (run 2: persistent forward programs, slower; run 3: one program per tile again, and the three taps of a kernel row packed into one K=128 dot, 2-4x slower; run 4: the run-1 kernels with affine offsets, on 24 and on 32 (zero-padded) channels). Predicted: forward and filter gradient each 1.5-2x faster than cuDNN's ~0.23 ms.
  python3 kernels/implicit_gemm_bench.py 2>&1 | grep -v '^[IW]1' | tee $OUT/igemm10.txt
fi
if [ "$part" = igemm10b ]; then
  # igemm10 (run 4): on 32 channels cuDNN's forward takes 0.150 ms (0.235 on 24) and the Pallas filter
  # gradient 0.167 ms (cuDNN 0.245 on 24, 0.290 on 32). --block1_conv1_impl=padded_igemm: the whitening
  # pass writes 8 zero channels, cuDNN's forward on 32, the Pallas filter gradient. Predicted -3..-4%
  # (-0.16 ms of ~3.6 ms per step, less ~0.01 ms for the wider write and the partial sums). ABBA, then
  # a profile of the new variant.
  abba conv20 "-- $RECIPE" igemm20 "-- $RECIPE --block1_conv1_impl=padded_igemm"
  profile igemm $RECIPE --block1_conv1_impl=padded_igemm
fi
if [ "$part" = igemm10c ]; then
  # igemm10b: -1.0% (0.8701 vs 0.8790 s). Its profile: the convolutions saved 0.15 ms per step as
  # predicted, but the whitening pass became a pad fusion (jnp.pad of its output) at 0.238 ms, ~0.13 ms
  # more than before. Now the whitening computes the 8 zero channels itself (zero weights and bias).
  # Predicted -3..-3.5% against fast.flags. ABBA, then the profile again.
  abba conv20 "-- $RECIPE" igemm20 "-- $RECIPE --block1_conv1_impl=padded_igemm"
  profile igemm $RECIPE --block1_conv1_impl=padded_igemm
fi
if [ "$part" = whiten11 ]; then
  # Written in the tenth session, not yet run. igemm10c's profile: the elementwise whitening pass
  # takes 0.233 ms per step at 32 channels for ~110 MB of traffic; each output element loads its 12
  # inputs and 12 weights (load-instruction bound). --whiten_impl=matmul: the 2x2 patches (12 values
  # per pixel) times the kernel as one cuBLAS GEMM, bias and GELU after it. Predicted -2..-4% (the
  # pass to ~0.08-0.12 ms: the patch pass, the GEMM, the bias + GELU pass if cuBLAS does not take
  # them as its epilogue). The two forms alone first (24 and 32 channels), then ABBA, then a profile.
  python3 kernels/conv_shapes_bench.py --whiten_only 2>&1 | grep -v '^[IW]1' | tee $OUT/whiten_forms11.txt
  abba elem20 "-- $RECIPE" mm20 "-- $RECIPE --whiten_impl=matmul"
  profile whiten_mm $RECIPE --whiten_impl=matmul
fi
if [ "$part" = serve11 ]; then
  # The served network of fast.flags has had block1's first conv on 32 channels (padded_igemm) since
  # session 10; its batch-1 latency was never measured. Command buffers on, twice (serve9c: 0.264 ms
  # with the 24-channel conv). Predicted: unchanged within ~0.01 ms (batch 1 is launch bound).
  served_latency_pair serve11
fi
if [ "$part" = whiten11b ]; then
  # whiten11 (call 1 of the eleventh session): the GEMM form lost (+0.7%: 0.8655 / 0.8661 vs 0.8602 / 0.8587 s);
  # alone at 32 channels it took 0.164 ms against the fused pass's 0.163. --whiten_impl=pallas: the sums,
  # bias and GELU as one Pallas kernel (models/whiten_kernel.py) that reads each pixel's 12 patch values
  # once and writes 32 channels of consecutive pixels contiguously. Predicted: the pass 0.233 -> ~0.05 ms
  # per step (the ~94 MB write at ~2-3 TB/s), -3..-5% timed. Bench first (launch parameters); no ABBA
  # if the kernel did not run.
  python3 kernels/conv_shapes_bench.py --whiten_only 2>&1 | grep -v '^[IW]1' | tee $OUT/whiten_forms11b.txt
  grep -q 'pallas block' $OUT/whiten_forms11b.txt || exit 1
  abba elem20 "-- $RECIPE" pallas20 "-- $RECIPE --whiten_impl=pallas"
  profile whiten_pallas $RECIPE --whiten_impl=pallas
fi
if [ "$part" = whiten11c ]; then
  # whiten11b (call 2): --whiten_impl=pallas -3.4% (0.8411 / 0.8422 vs 0.8712 / 0.8707 s), accuracy 90.50 /
  # 90.57 vs 90.61 / 90.56; the kernel took 0.105 ms per step, not the predicted ~0.05 (alone: 0.103-0.114 ms
  # over launch parameters). Counted per thread, its libdevice tanh and layout changes around the dot cost
  # about as much as its memory traffic. Now: the GELU's tanh as x * sigmoid(2z) with one exp, and a
  # multiply-add form ('fma') beside the dot, alone; then ABBA again (the new GELU; 40 more seeds for the
  # accuracy question), then the latency of the served network with the Pallas whitening. Predicted: the
  # kernel alone 0.06-0.08 ms; timed -3.5..-4.5% against elementwise; batch-1 latency unchanged (~0.26 ms).
  python3 kernels/conv_shapes_bench.py --whiten_only 2>&1 | grep -v '^[IW]1' | tee $OUT/whiten_forms11c.txt
  grep -q 'pallas dot' $OUT/whiten_forms11c.txt || exit 1
  abba elem20 "-- $RECIPE" pallas20 "-- $RECIPE --whiten_impl=pallas"
  RECIPE="$RECIPE --whiten_impl=pallas"
  served_latency_pair serve11c
fi
if [ "$part" = wall11 ]; then
  # The issue-3 wall rows for fast.flags with --whiten_impl=pallas (adopted after whiten11c): one cold
  # process without a compile cache, one that fills JAX's persistent cache, three that hit it.
  # Goals: cold <= 20 s, warm <= 5 s. Predicted: cold ~40 s (cuDNN autotuning ~11 s of it), warm 4-6 s.
  wall_rows 3 | bash kernels/h100_cifar_speed_ab.sh
fi
if [ "$part" = wall11b ]; then
  # wall11 (call 4): every process that hit JAX's persistent compilation cache died in its first
  # evaluation: "INTERNAL: No DNN support for stream [executable_name='jit_eval_fn']" (cold 25.4 s and the
  # cache fill ran). Which recipe change since the last working warm rows (seventh session) does it:
  # cuDNN convolutions in command buffers (ninth), padded_igemm (tenth), the Pallas whitening (this one)?
  # One cache fill + one cache hit each, with one of them taken back.
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
nocbconv_fill 1 -- $RECIPE --xla_flags=--xla_gpu_enable_triton_gemm=false --compilation_cache_dir=/tmp/jc_a
nocbconv_warm 1 -- $RECIPE --xla_flags=--xla_gpu_enable_triton_gemm=false --compilation_cache_dir=/tmp/jc_a
elemwhiten_fill 1 -- $RECIPE --whiten_impl=elementwise --compilation_cache_dir=/tmp/jc_b
elemwhiten_warm 1 -- $RECIPE --whiten_impl=elementwise --compilation_cache_dir=/tmp/jc_b
conv1_fill 1 -- $RECIPE --block1_conv1_impl=conv --compilation_cache_dir=/tmp/jc_c
conv1_warm 1 -- $RECIPE --block1_conv1_impl=conv --compilation_cache_dir=/tmp/jc_c
VARIANTS
fi
if [ "$part" = wall11c ]; then
  # wall11b: only the run without cuDNN convolutions in command buffers survived its cache hit (4.8 s
  # wall, 0.823 s timed); the elementwise whitening and nn.Conv block1 died as fast.flags did. The entry
  # point now takes CONVOLUTION out of the command buffers when --compilation_cache_dir is given. fast.flags
  # as users run it: cold, cache fill, two cache hits. Predicted: the hits run, ~4.5-5.5 s wall.
  wall_rows 2 | bash kernels/h100_cifar_speed_ab.sh
fi
if [ "$part" = h100_12 ]; then
  # Written in the eleventh session for the next H100 (none has been lent since the sixth): fast.flags as it
  # stands, 20 seeds twice (the issue-3 timed goal, 0.90 s), then the wall rows (cold; cache fill; two hits).
  # Predicted (twelfth session, with --loop_chunk=8): ~0.87-0.91 s at ~90.58% (by the H100/H200 ratio of the seventh
  # session, ~1.07, and by the H200 in-call ratios since the H100's 1.025-1.029 s); cold ~30 s; warm ~4.5-5.5 s.
  { echo "final20 20 -- $RECIPE"; echo "final20_b 20 -- $RECIPE"; wall_rows 2; } | bash kernels/h100_cifar_speed_ab.sh
  # Added in the fourteenth session: fast.flags now keeps cuDNN engines 0, 1, 19 and 45 out of the autotuning (they
  # never won on an H200 and held 84-85% of its profiling). One more cold process, with every engine offered and the
  # autotuner's dump, checks that on the H100: their share and wins there (kernels/autotune_results.py).
  echo "all_engines_dump 1 XLA_FLAGS=--xla_gpu_dump_autotune_logs_to=/tmp/at_h100.txt -- $RECIPE --cudnn_excluded_engines=" \
    | bash kernels/h100_cifar_speed_ab.sh
  python3 kernels/autotune_results.py /tmp/at_h100.txt > $OUT/autotune_h100.txt; grep -A8 'cuDNN engine' $OUT/autotune_h100.txt
  # Fifteenth session: every program now compiles side by side and the process start is read exactly (it had been up
  # to 1 s early). On H200s that gave cold 14.0-17.4 s and warm 3.5-4.4 s at 0.796-0.801 s timed; predicted here
  # timed ~0.86-0.89 s, cold ~15-20 s, warm ~3.5-4.5 s (the `process` column is the cross-check).
  # Added in the eighteenth session: issue 6's goal on its own GPU, a CIFAR-10 request <= 0.10 ms. The benchmark's
  # defaults (host_graph polled first), as part final28 ran them on H200s: 0.095-0.128 ms over ten runs on four
  # machines. Predicted on the H100: within that range; the host's launch is about half of a request.
  R=/tmp/h100_infer; train_served
  serve $OUT/h100_infer run_a --latency_modes=
  serve $OUT/h100_infer run_b --latency_modes=device,host,host_staged,host_graph --nowrite_exported \
    --throughput_batch=0 --bound_items=0
  # Nineteenth session: the copies are kernels by default now (0.075-0.098 ms in 24 of 26 runs on two H200 machines;
  # the driver's copies lower in 3 of 11 pairs). The same A/B on the H100, host_graph alone, ABBA.
  for copies in kernel memcpy memcpy kernel; do
    serve $OUT/h100_infer copies_$copies$([ -e $OUT/h100_infer/copies_$copies.log ] && echo _b) --graph_io_copies=$copies \
      --latency_modes=host_graph --nowrite_exported --throughput_batch=0 --bound_items=0 | grep -E '^==|^native'
  done
fi
if [ "$part" = pool12 ]; then
  # Block1's pool backward fused into its Pallas filter gradient (--block1_conv1_impl=padded_igemm_pool): the
  # kernel reads the pooled gradient and the int8 window indices instead of the 31x31 gradient that XLA's
  # select pass wrote (0.114 ms per step) and each of its three kernel-row programs read (wgrad 0.158 ms).
  # Predicted: the pair 0.272 -> ~0.10-0.12 ms per step, -3..-4% timed. Then a profile of it, whose gap table
  # splits the 0.34 ms of host gaps per step by gap length.
  python3 kernels/implicit_gemm_bench.py --pooled 2>&1 | grep -v '^[IW]1' | tee $OUT/pooled_wgrad12.txt
  abba fast "-- $RECIPE" pool "-- $RECIPE --block1_conv1_impl=padded_igemm_pool"
  profile pool $RECIPE --block1_conv1_impl=padded_igemm_pool
fi
if [ "$part" = chunk12 ]; then
  # pool12 (call 1): the fused pool backward lost (+1.9% / +1.7%; alone 0.35 vs 0.28 ms), but its profile's gap
  # table found 64 idle gaps of 52.7 us per 64 steps after MemcpyD2H: the epoch loop's predicate read back to
  # the host after every step. --loop_chunk=8 runs whole chunks of 8 steps as an inner loop with a known trip
  # count (no read-back); fast.flags' 229 steps then take ~56 round trips instead of ~238. Predicted -1..-1.5%
  # timed, compile +1..3 s (the step body twice in the program). Then a profile of it.
  abba fast "-- $RECIPE" chunk "-- $RECIPE --loop_chunk=8"
  profile chunk $RECIPE --loop_chunk=8
fi
if [ "$part" = wall12 ]; then
  # fast.flags with --loop_chunk=8 (adopted after chunk12: -2.1%): what bounds the whitening kernel (the kernel
  # with parts taken out), 20 seeds, then the wall rows (cold; cache fill; two hits). Predicted: timed ~0.815-0.82 s;
  # cold +1..2 s over 25-28 s (the pruned program compiles its step twice); the hits run, ~4.5-5 s.
  python3 kernels/whiten_kernel_probe.py 2>&1 | grep -v '^[IW]1' | tee $OUT/whiten_probe12.txt
  { echo "final20 20 -- $RECIPE"; wall_rows 2; } | bash kernels/h100_cifar_speed_ab.sh
fi
if [ "$part" = chunk12b ]; then
  # wall12's probe: with the index arithmetic alone the whitening kernel's grid takes 0.056 ms, the stores alone
  # 0.064, the loads 0.068, all of it 0.122 (in-program timing): each program's load -> dot -> store chain runs
  # serially and too few programs overlap it. Small launch shapes (1-2 warps) first. Then --loop_chunk=32 against
  # fast.flags' 8: every full epoch one round trip (8: four), the pieces of 25 steps per step (8: three chunks + 1).
  # Predicted -0.3..-0.4% (~3 ms of idle per run), likely inside the noise.
  python3 kernels/whiten_kernel_probe.py --launch 2>&1 | grep -v '^[IW]1' | tee $OUT/whiten_probe12b.txt
  abba chunk8 "-- $RECIPE" chunk32 "-- $RECIPE --loop_chunk=32"
fi
if [ "$part" = whiten12 ]; then
  # The probe (calls 3-4) put half the whitening kernel's time in the GELU (0.069 -> 0.122 ms) and ~0.05 ms in the
  # grid's index arithmetic. Alone: the row-block grid (no divisions by 961 and 31) and the tanh through the GPU's
  # tanh.approx.f32; predicted -0.02..-0.03 and -0.03..-0.05 ms. Then --whiten_fast_tanh in training, ABBA (it
  # changes the values; the grid does not): predicted -0.8..-1.4%, accuracy unchanged.
  python3 kernels/whiten_kernel_probe.py --variants 2>&1 | grep -v '^[IW]1' | tee $OUT/whiten_probe12c.txt
  abba fast "-- $RECIPE" fasttanh "-- $RECIPE --whiten_fast_tanh"
fi
if [ "$part" = whiten12b ]; then
  # whiten12: alone the row grid took 0.075-0.076 ms (flat 0.114-0.118), with tanh.approx 0.052; --whiten_fast_tanh on
  # the flat grid -0.3% / -0.7% ABBA at 90.59-90.62%. Both adopted (GRID='rows', fast.flags --whiten_fast_tanh).
  # Now on the row grid: exact tanh vs the adopted fast.flags. Predicted -0.5..-0.7%.
  abba exact "-- $RECIPE --nowhiten_fast_tanh" fast "-- $RECIPE"
fi
if [ "$part" = rows13 ]; then
  # Written at the end of the twelfth session for the next one (H200 or H100): fast.flags as it now stands (row-grid
  # whitening kernel, --whiten_fast_tanh, --loop_chunk=8) was timed only in call 6's ABBA; its wall rows and the
  # served network's batch-1 latency were last measured before those changes. 20 seeds, the wall rows (cold; cache
  # fill; two hits), then the latency pair. Predicted on an H200: ~0.80 s at ~90.55%; cold ~27 s; warm ~4.8 s;
  # latency ~0.25 ms (the whitening kernel is a small part of a batch-1 call).
  { echo "final20 20 -- $RECIPE"; wall_rows 2; } | bash kernels/h100_cifar_speed_ab.sh
  served_latency_pair serve13
fi
if [ "$part" = igemm13 ]; then
  # Written at the end of the twelfth session: the whitening kernel's row grid took 0.076 ms alone against its flat
  # grid's 0.118 (divisions by the width per pixel). The implicit-GEMM filter gradient (0.156 ms per step) divides by
  # the width per pixel too; Tiling(wgrad_grid='rows') takes whole padded rows instead. Alone first, both grids over
  # the sweep; predicted -0.01..-0.03 ms (the kernel also does real dot work). If it wins, ABBA after making it the
  # default (Tiling has no flag).
  python3 kernels/implicit_gemm_bench.py 2>&1 | grep -v '^[IW]1' | tee $OUT/igemm13.txt
  python3 kernels/implicit_gemm_bench.py --pooled --quick 2>&1 | grep -v '^[IW]1' | tee -a $OUT/igemm13.txt
fi
if [ "$part" = trace13 ]; then
  # rows13 (call 1): the served fast.flags network takes 0.243-0.247 ms per batch-1 call with device-resident input;
  # the probe's floors are ~0.07-0.10 ms for a no-op call and ~0.075 ms of device work. kernels/latency_trace.py traces
  # the calls and splits each into launch (call -> first kernel), device span and notice (last kernel -> the host
  # returns), with the runtime's host events per call: with convolution command buffers (the benchmark's default)
  # and without. Predicted: launch ~0.08-0.10, device ~0.075, notice ~0.05-0.08 ms. Then a profile of fast.flags as
  # it now stands (the last one predates the whitening kernel's row grid and fast tanh).
  for label in conv_cmdbuf default; do
    XLA_FLAGS=$([ "$label" = default ] || echo --xla_gpu_enable_command_buffer=+CONVOLUTION) \
      python3 kernels/latency_trace.py $RECIPE --trace_dir=/tmp/lt_$label --json=$OUT/latency_trace13_$label.json 2>&1 \
      | grep -v '^[IW]1' | tee $OUT/latency_trace13_$label.txt
  done
  profile fast13 $RECIPE
fi
if [ "$part" = queue13 ]; then
  # Ran at commit 60f1164 (the queued step programs, reverted after hybrid13); OLD = a snapshot of 65a808d.
  # trace13's profile of fast.flags: each chunk boundary of the epoch loop leaves the GPU idle ~0.32 ms (the host
  # reads the outer loop's predicate back, wakes, relaunches), and each piece starts ~0.64 ms after its
  # host-to-device copies of the epoch and step numbers. Now each piece is a queue of dispatches of step programs
  # with static trip counts (chunks of 8 steps, then single steps) and device-resident numbers, no host wait until
  # the epoch ends. ABBA against the previous commit's code (PYTHONPATH=$OLD), a profile, then the wall rows (the
  # programs changed: three step programs instead of two epoch programs). Predicted -1..-2% timed; compile +-1 s.
  # PYTHONSAFEPATH (Python >= 3.11): `python -m` puts the working directory first on sys.path, ahead of PYTHONPATH,
  # so without it the "old" rows would import this directory's dawnjax (as seventh-session wall7's did).
  OLD=${OLD:?OLD=path of a snapshot of the previous commit}
  imports_from old $OLD || exit 1
  abba loop "PYTHONSAFEPATH=1 PYTHONPATH=$OLD -- $RECIPE" queue "-- $RECIPE"
  profile queue13 $RECIPE
  wall_rows 2 | bash kernels/h100_cifar_speed_ab.sh
fi
if [ "$part" = hybrid13 ]; then
  # Ran at commit e45805a (--chunk_loop, reverted with the step programs after this call); OLD = 65a808d.
  # queue13 (call 3): the queued chunk dispatches compiled 7 s faster (16.0-16.6 vs 23.2-24.3 s; cold wall 24.4 s)
  # but ran 1.5% slower (0.8132 / 0.8136 vs 0.8014 / 0.8019 s): the chunk boundaries' idle went, yet nearly every
  # kernel boundary now has a < 1 us gap (0.084 vs 0.018 ms per step). --chunk_loop=device keeps the new programs
  # (the compile win: single-step programs, the step compiled once per program) but loops over a piece's chunks on
  # the device as before. ABCCBA, 20 seeds each: the previous commit's code, --chunk_loop=host, =device. Predicted:
  # device ~ the old code's time, compile ~ host's. Then device's wall rows.
  OLD=${OLD:?OLD=path of a snapshot of the previous commit}
  imports_from old $OLD || exit 1
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
loop 20 PYTHONSAFEPATH=1 PYTHONPATH=$OLD -- $RECIPE
host 20 -- $RECIPE --chunk_loop=host
device 20 -- $RECIPE --chunk_loop=device
device_b 20 -- $RECIPE --chunk_loop=device
host_b 20 -- $RECIPE --chunk_loop=host
loop_b 20 PYTHONSAFEPATH=1 PYTHONPATH=$OLD -- $RECIPE
VARIANTS
  RECIPE="$RECIPE --chunk_loop=device"; wall_rows 1 | bash kernels/h100_cifar_speed_ab.sh
fi
if [ "$part" = spin13 ]; then
  # trace13 (call 2): a served batch-1 call with convolution command buffers is ~95 us of launch, ~58 us on the GPU and
  # ~89 us until the host notices the result (a no-op call: 46 / 1 / 57 us); reading each label back between calls
  # (the benchmark's 'device' mode) makes the next call's host work ~1.6x slower (launch 159, notice 121 us).
  # Polling the result's readiness instead of the runtime's blocking wait keeps the calling thread awake:
  # --latency_wait=spin. Predicted: notice -30..-60 us, and less of the read-back penalty. The trace with the _spin
  # rows, then one trained seed served with block, spin, spin, block (device and host input). Files in spin13.tgz.
  mkdir -p $OUT/spin13
  XLA_FLAGS=--xla_gpu_enable_command_buffer=+CONVOLUTION python3 kernels/latency_trace.py $RECIPE --top=12 \
    --trace_dir=/tmp/lt_spin --json=$OUT/spin13/latency_trace13_spin.json 2>&1 | grep -v '^[IW]1' \
    | tee $OUT/spin13/latency_trace13_spin.txt | head -9
  R=/tmp/spin13; train_served
  off="--nowrite_exported --throughput_batch=0 --bound_items=0"
  for run in block:block spin:spin spin_b:spin block_b:block; do
    serve $OUT/spin13 ${run%%:*} --conv_command_buffers --latency_wait=${run#*:} $off
  done
  cd $OUT && tar czf spin13.tgz spin13 && rm -rf spin13 && cd - > /dev/null
fi
if [ "$part" = queue14 ]; then
  # Written at the end of the thirteenth session for the next one. queue13 measured the queued step programs +1.3..1.5%
  # slower than this epoch program; their chunk program's Newton-Schulz GEMMs ran other cuBLASLt algorithms (3 of 57
  # per step on algorithms 1/3/5 against 18), perhaps autotuned while other programs compiled beside it. Branch
  # exp/queue-serial (e42f7a6 = e45805a + DAWNJAX_SERIAL_COMPILE=1: one program compiled at a time). QUEUE=DIR: its
  # snapshot (git archive exp/queue-serial | tar -x -C .snap_queue; carry it). ABBA: this commit's epoch program vs
  # the queued programs compiled serially; then one seed of each with its HLO dumped, and the algorithm counts.
  # Predicted: if the picks explain queue13, the queue -0.5..-1% (the chunk boundaries' ~1.1% idle gone), its picks
  # like the epoch program's; cold compile about equal (serial). If the picks match and it is still slower, the
  # cause is elsewhere (trace the host's launch thread).
  QUEUE=${QUEUE:?QUEUE=path of a snapshot of branch exp/queue-serial}
  imports_from queue $QUEUE || exit 1
  Q="PYTHONSAFEPATH=1 PYTHONPATH=$QUEUE DAWNJAX_SERIAL_COMPILE=1"
  abba loop "-- $RECIPE" queue "$Q -- $RECIPE --chunk_loop=host"
  D="--xla_dump_hlo_as_text --xla_dump_hlo_module_re=.*(epoch_fn|steps_fn).*"
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
dump_loop 1 XLA_FLAGS='--xla_dump_to=/tmp/hlo_loop14 $D' -- $RECIPE
dump_queue 1 $Q XLA_FLAGS='--xla_dump_to=/tmp/hlo_queue14 $D' -- $RECIPE --chunk_loop=host
VARIANTS
  for d in /tmp/hlo_loop14 /tmp/hlo_queue14; do
    for f in $d/*after_optimizations.txt; do
      case $f in *buffer*) continue;; esac
      echo "== $f"; grep 'cublas\$lt\$matmul' $f | grep -o '"selected_algorithm":"[^"]*"' | sort | uniq -c
    done
  done | tee $OUT/algorithms14.txt
fi
if [ "$part" = cold15 ]; then
  # Fourteenth session. Cold wall 27.7 s (goal 20): ~11 s of it is XLA's cuDNN autotuning of the epoch program's 17
  # convolutions, ~1,160 candidates timed one after another. One cold process per row (no compile cache): the
  # picker's own log split by candidate (kernels/conv_autotune_log.py: plan building vs GPU runs, which candidates
  # hold it), and three ways to offer the picker fewer candidates. Predicted: winograd off -0..-1 s; deterministic
  # engines only -1..-3 s of compile (nondeterministic filter-gradient engines dropped), timed unknown; a 256 MiB
  # workspace limit -0..-2 s (large-workspace engines disqualified before they run). Each row's timed seconds is one
  # seed: a change of compile worth keeping then needs its 20-seed ABBA.
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
c_base 1 -- $RECIPE
c_log 1 TF_CPP_MIN_LOG_LEVEL=0 TF_CPP_VMODULE=conv_algorithm_picker=4 -- $RECIPE
c_nowino 1 TF_ENABLE_WINOGRAD_NONFUSED=0 -- $RECIPE
c_determ 1 XLA_FLAGS=--xla_gpu_exclude_nondeterministic_ops=true -- $RECIPE
c_ws256 1 TF_CUDNN_WORKSPACE_LIMIT_IN_MB=256 -- $RECIPE
VARIANTS
  # Call 1 of the fourteenth session ran this with kernels/conv_autotune_log.py, which read conv_algorithm_picker.cc's
  # lines: this build autotunes through xla/backends/autotuner/autotuner.cc, so the c_log row logged none (part
  # autotune16 reads the right file).
  gzip -c $OUT/runs/c_log.log > $OUT/c_log15.log.gz; rm $OUT/runs/c_log.log
fi
if [ "$part" = autotune16 ]; then
  # cold15 (call 1): --xla_gpu_exclude_nondeterministic_ops cut the cold compile 22.1 -> 11.6 s (epoch program 13.4 ->
  # 3.9 s; wall 14.9 s) but cost +10% timed (0.878 vs 0.796 s, one seed). In this XLA it makes the autotuner take
  # each instruction's first config (cuDNN's heuristic pick) without timing any, as --xla_gpu_autotune_level=0 does.
  # Here: the autotuner's own log and its per-candidate results (kernels/autotune_log.py: each instruction's profiling
  # span; kernels/autotune_results.py: per convolution, the first config's run time against the best, and each
  # engine's share), and level 0 alone (first configs, nothing else made deterministic). Predicted: profiling, not
  # compiling, holds most of the 11 s; the first config loses on a few convolutions only.
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
a_log 1 XLA_FLAGS=--xla_gpu_dump_autotune_logs_to=/tmp/autotune16.txt TF_CPP_MIN_LOG_LEVEL=0 TF_CPP_VMODULE=autotuner=2 -- $RECIPE
a_level0 1 -- $RECIPE --xla_gpu_autotune_level=0
a_level0_b 1 -- $RECIPE --xla_gpu_autotune_level=0
VARIANTS
  # As run (call 2), both readers were written for other XLA versions' formats and printed nothing; the raw log and
  # dump came back and kernels/autotune_log.py / autotune_results.py now read them (fourteenth session's README).
  python3 kernels/autotune_log.py $OUT/runs/a_log.log --top=30 | tee $OUT/autotune16_log.txt
  python3 kernels/autotune_results.py /tmp/autotune16.txt | tee $OUT/autotune16_results.txt
  gzip -c /tmp/autotune16.txt > $OUT/autotune16.txt.gz
  gzip -c $OUT/runs/a_log.log > $OUT/a_log16.log.gz; rm $OUT/runs/a_log.log
fi
if [ "$part" = errata17 ]; then
  # autotune16 (call 2): the autotuning's ~11 s of a cold compile is GPU profiling, and 85% of the candidates' run
  # time is four cuDNN engines (0, 1, 19, 45: single runs up to 657 ms against a best of 0.14 ms) that never won
  # (the winners: engines 62, 65, 67). --cudnn_excluded_engines blocks them through cuDNN's errata file, so XLA never
  # builds or times them. Rows: one cold process each with the autotuner's log and dump (base, excluded), one more
  # cold process excluded without logging (the wall figure), then the 20-seed ABBA. Predicted: autotuning 11 -> ~3 s,
  # cold compile -7..-9 s, cold wall ~19-21 s; the same winners (compare), so timed unchanged within noise.
  E=--cudnn_excluded_engines=0,1,19,45
  L="TF_CPP_MIN_LOG_LEVEL=0 TF_CPP_VMODULE=autotuner=2"
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
e_base 1 XLA_FLAGS=--xla_gpu_dump_autotune_logs_to=/tmp/at_base17.txt $L -- $RECIPE
e_excl 1 XLA_FLAGS=--xla_gpu_dump_autotune_logs_to=/tmp/at_excl17.txt $L -- $RECIPE $E
e_excl_cold 1 -- $RECIPE $E
VARIANTS
  for r in base excl; do
    python3 kernels/autotune_log.py $OUT/runs/e_$r.log --top=5 > $OUT/autotune17_log_$r.txt
    gzip -c $OUT/runs/e_$r.log > $OUT/e_${r}17.log.gz; rm $OUT/runs/e_$r.log
  done
  head -7 $OUT/autotune17_log_*.txt
  python3 kernels/autotune_results.py /tmp/at_excl17.txt --compare /tmp/at_base17.txt > $OUT/autotune17_results.txt
  grep -A30 'cuDNN engine' $OUT/autotune17_results.txt | head -12; tail -8 $OUT/autotune17_results.txt
  tar czf $OUT/autotune17_dumps.tgz -C /tmp at_base17.txt at_excl17.txt
  abba base "-- $RECIPE" excl "-- $RECIPE $E"
fi
if [ "$part" = final18 ]; then
  # errata17 (call 3): --cudnn_excluded_engines=0,1,19,45 cut the autotuning 11.2 -> 3.8 s and the cold compile by
  # ~7 s at the same timed seconds; now in fast.flags. Here, fast.flags as it stands: the wall protocol (cold, cache
  # fill, 2 hits), a second cold process, 20 seeds; and the first epoch program compiled beside the others instead of
  # before them (branch exp/compile-together, TOG=its snapshot): with autotuning at ~4 s, the second epoch program's
  # ~5.5 s of compile may overlap it. Predicted: cold wall 19-21 s;
  # together -1..-3 s of compile if duplicate autotuning of shared convolutions (both programs miss the cache at
  # once) costs less than the overlap gains.
  TOG=${TOG:?TOG=path of a snapshot of branch exp/compile-together}
  imports_from together $TOG || exit 1
  T="PYTHONSAFEPATH=1 PYTHONPATH=$TOG"
  # Trimmed to fit the session's last device time: no autotuner dump (call 3 compared the winners) and no 20 seeds
  # of the together rows (a compile gain there is a lead, not adopted, until its timed seconds are measured).
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
$(wall_rows 2)
together_cold1 1 $T -- $RECIPE
cold2 1 -- $RECIPE
together_cold2 1 $T -- $RECIPE
final20 20 -- $RECIPE
VARIANTS
fi
if [ "$part" = together19 ]; then
  # Written at the end of the fourteenth session for the next one. final18 (call 4): compiling the first epoch program
  # beside the others (branch exp/compile-together: 73b2d72, two commits on 6b9eeea; TOG=its snapshot: git archive
  # exp/compile-together | tar -x -C .snap_tog; carry it) cut the cold compile 21.0 / 24.0 -> 17.2 / 19.4 s, one seed
  # each, with the timed seconds unmeasured. ABBA 20 seeds (each row is a cold process: its compile seconds count too),
  # then two cold rows of each. Predicted: timed unchanged (the autotuner still picks the same winners: it times all
  # of them, only now with other programs compiling beside it), compile -2..-4 s.
  TOG=${TOG:?TOG=path of a snapshot of branch exp/compile-together}
  imports_from together $TOG || exit 1
  T="PYTHONSAFEPATH=1 PYTHONPATH=$TOG"
  abba plain "-- $RECIPE" together "$T -- $RECIPE"
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
cold_plain 1 -- $RECIPE
cold_together 1 $T -- $RECIPE
cold_together_b 1 $T -- $RECIPE
cold_plain_b 1 -- $RECIPE
VARIANTS
fi
if [ "$part" = together20 ] || [ "$part" = together_warm20 ]; then
  # together19 without its four cold rows (each ABBA row is a cold process whose compile seconds count too), so that
  # warm20 fits in the same call. Predicted: timed unchanged, compile -2..-4 s.
  TOG=${TOG:?TOG=path of a snapshot of branch exp/compile-together}
  imports_from together $TOG || exit 1
  abba plain "-- $RECIPE" together "PYTHONSAFEPATH=1 PYTHONPATH=$TOG -- $RECIPE"
fi
if [ "$part" = warm20 ] || [ "$part" = together_warm20 ]; then
  # Fifteenth session: where a warm start's seconds go (cache hits 5.7 / 5.9 s in final18: start-up 2.6-2.9, data
  # 0.3-0.4, program loading 0.9-1.0, warm-up 0.7 (0.4 after a cold compile), seeds and reporting 1.1 for 0.8 timed).
  # OLD=a snapshot of the commit before this session (6d9a078). Each side has its own cache directory: a JAX cache
  # hit is never stored in the executable cache, so a shared one would leave the second side without entries.
  # Predicted for the new code: -0.15..-0.25 s (orbax no longer imported to read its version).
  OLD=${OLD:?OLD=path of a snapshot of the commit to compare with}
  imports_from old $OLD || exit 1
  O="PYTHONSAFEPATH=1 PYTHONPATH=$OLD"
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
fill_old 1 $O -- $RECIPE --compilation_cache_dir=/tmp/jc_old
fill_new 1 -- $RECIPE --compilation_cache_dir=/tmp/jc_new
warm_old1 1 $O -- $RECIPE --compilation_cache_dir=/tmp/jc_old
warm_new1 1 -- $RECIPE --compilation_cache_dir=/tmp/jc_new
warm_new2 1 -- $RECIPE --compilation_cache_dir=/tmp/jc_new
warm_old2 1 $O -- $RECIPE --compilation_cache_dir=/tmp/jc_old
warm_old3 1 $O -- $RECIPE --compilation_cache_dir=/tmp/jc_old
warm_new3 1 -- $RECIPE --compilation_cache_dir=/tmp/jc_new
warm_new4 1 -- $RECIPE --compilation_cache_dir=/tmp/jc_new
warm_old4 1 $O -- $RECIPE --compilation_cache_dir=/tmp/jc_old
warm_new_tb1 1 -- $RECIPE --compilation_cache_dir=/tmp/jc_new --tensorboard
warm_new_tb2 1 -- $RECIPE --compilation_cache_dir=/tmp/jc_new --tensorboard
VARIANTS
  # The same warm command (TensorBoard on, as a user runs it) under -X importtime, then traced by stage.
  W="$RECIPE --data_dir=.data/cifar10-jpeg.tar.gz --cache_dir=/tmp/cache --noeval_every_epoch --noexport_model"
  python3 -X importtime -m dawnjax.experiments.cifar10 $W --compilation_cache_dir=/tmp/jc_new \
    --output_dir=/tmp/imp20 2> /tmp/importtime20.txt | tail -1
  sort -t'|' -k2 -n -r /tmp/importtime20.txt | head -60 > $OUT/importtime20.txt
  python3 kernels/warm_start_trace.py run --trace_dir=/tmp/wtrace20 -- $W --compilation_cache_dir=/tmp/jc_new \
    --output_dir=$OUT/runs/trace20 2>&1 | grep -v '^[IW]1' | tail -3
  python3 kernels/warm_start_trace.py summary --trace_dir=/tmp/wtrace20 --top=15 > $OUT/warm_trace20.txt
  head -40 $OUT/warm_trace20.txt
  P=$(ls /tmp/wtrace20/plugins/profile/*/perfetto_trace.json.gz 2>/dev/null | head -1)
  [ -n "$P" ] && [ $(stat -c %s $P) -lt 40000000 ] && cp $P $OUT/runs/trace20/
  startup_probes "" "--exe_cache_dir=/tmp/jc_new/dawnjax_executables"
fi
if [ "$part" = final21 ]; then
  # Fifteenth session, after call 1: every program compiles side by side (exp/compile-together adopted) and the
  # process start comes from the kernel's start time against CLOCK_BOOTTIME (psutil's create_time put it up to 1 s
  # early: the boot time it adds is truncated to whole seconds). The wall protocol again, the "process" column
  # (/usr/bin/time: fork of `timeout` to exit, teardown included) as the cross-check, and 20 seeds of the code as it
  # stands. Predicted: wall = process - teardown (~0.3-0.7 s), cold ~16-20 s, warm ~4 s on call 1's machine.
  # Measured (call 2): process - wall 0.43-0.66 s warm, 0.6-1.0 s cold; cold 16.7-17.4 s (21.1 the machine's first
  # process), warm 3.7-4.4 s; pinning the served process to 2 or 4 cores: no consistent latency change.
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
cold1 1 -- $RECIPE
cold2 1 -- $RECIPE
fill 1 -- $RECIPE --compilation_cache_dir=/tmp/jc21
warm1 1 -- $RECIPE --compilation_cache_dir=/tmp/jc21
warm2 1 -- $RECIPE --compilation_cache_dir=/tmp/jc21
warm3 1 -- $RECIPE --compilation_cache_dir=/tmp/jc21
warm4 1 -- $RECIPE --compilation_cache_dir=/tmp/jc21
warm_tb1 1 -- $RECIPE --compilation_cache_dir=/tmp/jc21 --tensorboard
cold3 1 -- $RECIPE
final20 20 -- $RECIPE
VARIANTS
  # Batch-1 latency (issue 6) with the process's threads pinned to fewer cores: does waking the waiting thread
  # (~40-57 us per call in the thirteenth session's trace) get cheaper when the runtime's threads share cores?
  R=/tmp/serve21; train_served
  off="--nowrite_exported --throughput_batch=0 --bound_items=0"
  for cpus in all 0-3 0-1 all_b 0-3_b; do
    case $cpus in all*) taskset -pc 0-$(($(nproc) - 1)) $$ > /dev/null;; *) taskset -pc ${cpus%_b} $$ > /dev/null;; esac
    serve $OUT/serve21 cpus_$cpus $off
  done
  taskset -pc 0-$(($(nproc) - 1)) $$ > /dev/null
fi
if [ "$part" = gc22 ]; then
  # Fifteenth session: final21's 20 seeds had one stall (seed 1's first epoch 0.248 s against 0.113 s). Suspected: a
  # full Python garbage collection (~0.1 s with JAX, Flax and optax loaded) inside the epoch, newly possible once the
  # reporter stopped importing orbax between seeds. OLD=a snapshot without the loop's gc.freeze (7843173). Both sides
  # print every full collection (kernels/gc_log_run.py) between their epoch lines. Predicted: OLD shows a full
  # collection inside some seed's epochs where its epoch is ~0.1 s long; the new code none inside a seed.
  # Measured (call 3): no full collection inside any seed on either side, no epoch over 0.15 s; the freeze was reverted.
  OLD=${OLD:?OLD=path of a snapshot of the commit to compare with}
  imports_from old $OLD || exit 1
  python3 -c "from dawnjax.data.cifar10 import load_cifar10; load_cifar10('.data/cifar10-jpeg.tar.gz', cache_dir='/tmp/cache')"
  A="--data_dir=.data/cifar10-jpeg.tar.gz --cache_dir=/tmp/cache --seeds=20 --noeval_every_epoch --notensorboard --noexport_model"
  mkdir -p $OUT/runs
  for side in old new old_b new_b; do
    case $side in old*) E="PYTHONSAFEPATH=1 PYTHONPATH=$OLD";; *) E="";; esac
    env $E python3 kernels/gc_log_run.py -- $RECIPE $A --output_dir=$OUT/runs/gc_$side 2>&1 | grep -v '^[IW]1' \
      > $OUT/runs/gc_$side.log
    echo "== $side: $(grep -c '^gc: generation 2' $OUT/runs/gc_$side.log) full collections; epochs over 0.15 s:"
    grep -B1 -A1 -E 'epoch +(0\.1[5-9]|0\.[2-9]|[1-9])[0-9]* s \|' $OUT/runs/gc_$side.log | grep -E '^(gc|seed)' | head -12
    grep -E '^gc' $OUT/runs/gc_$side.log | head -8
    python3 -c "import json,sys; s=json.load(open(sys.argv[1])); t=s['timed_seconds']; a=s['accuracy']; print(f\"timed {t['mean']:.4f} +- {t['std']:.4f} (max {t['max']:.4f}) acc {a['mean']:.2f}\")" \
      $OUT/runs/gc_$side/summary.json
  done
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
cold1 1 -- $RECIPE
cold2 1 -- $RECIPE
fill 1 -- $RECIPE --compilation_cache_dir=/tmp/jc22
warm1 1 -- $RECIPE --compilation_cache_dir=/tmp/jc22
warm2 1 -- $RECIPE --compilation_cache_dir=/tmp/jc22
warm3 1 -- $RECIPE --compilation_cache_dir=/tmp/jc22
VARIANTS
fi
if [ "$part" = pinned23 ]; then
  # Seventeenth session (issue 6): the reported 'host' latency (0.55-0.78 ms on H200s) is ~0.3-0.5 ms above the
  # device-resident one (0.22-0.25 ms); jax.device_put of one image alone costs ~0.16-0.22 ms and reading a label
  # back ~0.14-0.31 ms (latency_probe, session 9): each a separate runtime operation with its own stream and
  # completion events. The pinned modes make a request one program that reads the image from and writes the label
  # to pinned host memory ('host_pinned': a new pinned buffer per request; 'host_staged': one fixed staging buffer,
  # so the CUDA graph's input address never changes). Predicted: host_pinned ~0.30-0.35 ms, host_staged ~0.02 ms
  # below it; 0 predictions differ from 'host'. Each order once (mode order drifts), then the trace with host rows.
  # Measured (call 1, results/cifar10_jpeg/h200_2026-12-02_s17_pinned): host_staged 0.2165, host_pinned 0.4418, host
  # 0.7125, device 0.3026 ms; order_a failed in its export (the Pallas whitening kernel and a symbolic batch, fixed).
  R=/tmp/pinned23; train_served
  off="--throughput_batch=0 --bound_items=0"
  serve $OUT/pinned23 order_a --latency_modes=host,host_pinned,host_staged,device $off
  serve $OUT/pinned23 order_b --latency_modes=device,host_staged,host_pinned,host --nowrite_exported $off
  # The host modes latency_trace.py traced by default when this part ran (host_graph came later).
  trace_requests $OUT/pinned23 23 --top=20 --host_modes=host,host_pinned,host_staged
fi
if [ "$part" = staged24 ]; then
  # Seventeenth session, after pinned23 (host_staged 0.2165 ms, host_pinned 0.4418, host 0.7125, device 0.3026; its
  # exported path had failed: the Pallas whitening kernel cannot take jax.export's symbolic batch, now XLA's form
  # there). host_staged is now the reported default. Here: both mode orders (the first with the exported artifact,
  # which runs XLA's whitening), then host_staged with a spinning wait against the blocking one (the trace's notice
  # was 142 us of a 337 us traced call). Predicted: 0 predictions differ native vs exported or the native ones
  # between modes; spin -0.02..-0.05 ms if the harness now agrees with the trace (session 13: it did not).
  # Measured (call 3): host_staged 0.17-0.23 ms (exported 0.18), host 0.68-0.70; 6 of 10,000 native/exported
  # predictions differ (exact vs approximate tanh); spin 0.2476 / 0.1857 vs block 0.1733 / 0.2234: no gain.
  R=/tmp/staged24; train_served
  off="--throughput_batch=0 --bound_items=0 --nowrite_exported"
  serve $OUT/staged24 order_a --latency_modes=host_staged,host,device --throughput_batch=0 --bound_items=0
  serve $OUT/staged24 order_b --latency_modes=device,host,host_staged $off
  serve $OUT/staged24 block1 --latency_modes=host_staged,device $off
  serve $OUT/staged24 spin1 --latency_modes=host_staged,device --latency_wait=spin $off
  serve $OUT/staged24 spin2 --latency_modes=host_staged,device --latency_wait=spin $off
  serve $OUT/staged24 block2 --latency_modes=host_staged,device $off
fi
if [ "$part" = graph25 ]; then
  # Eighteenth session (issue 6): host_staged (0.17-0.23 ms on H200s) still runs the image and label copies outside
  # the CUDA graph (XLA's host-offload copies: ~50 us of device span for 56 us of kernels), and the host learns of
  # the result through the runtime's completion callback (~40-50 us even for a no-op). host_graph makes both copies
  # steps of the program (XLA FFI calls recorded into its graph) and, with --latency_wait=spin, polls the label's
  # sequence word in pinned host memory instead of the runtime. Predicted: host_graph (block) -0.02..-0.05 ms below
  # host_staged; with spin another -0.03..-0.05 (0.10-0.14 ms); 0 predictions differ from host_staged. The HLO dump
  # shows whether XLA put the two copy calls into the command buffer.
  R=/tmp/graph25; train_served
  off="--throughput_batch=0 --bound_items=0 --nowrite_exported"
  XLA_FLAGS="--xla_dump_to=/tmp/dump25 --xla_dump_hlo_as_text --xla_dump_hlo_module_re=.*graph_io_program.*" \
    serve $OUT/graph25 order_a --latency_modes=host_graph,host_staged,device --throughput_batch=0 --bound_items=0
  ls /tmp/dump25 | head -3; tar -czf $OUT/graph25/hlo.tar.gz -C /tmp/dump25 . 2>/dev/null
  serve $OUT/graph25 order_b --latency_modes=device,host_staged,host_graph $off
  serve $OUT/graph25 spin_a --latency_modes=host_graph,host_staged,device --latency_wait=spin $off
  serve $OUT/graph25 spin_b --latency_modes=device,host_staged,host_graph --latency_wait=spin $off
  trace_requests $OUT/graph25 25 --top=24 --host_modes=host_staged,host_graph
fi
if [ "$part" = default26 ]; then
  # Eighteenth session, after graph25 (host_graph polled 0.0945-0.0973 ms, host_staged 0.176-0.231, device
  # 0.234-0.273): the benchmark's defaults are now --latency_modes=host_graph,host_staged,host,device and
  # --latency_wait=spin. Two default runs (native and exported, throughput and bounds), then the tree proof's
  # ImageNet path (real JPEGs, top-5) with the same defaults. Predicted: host_graph 0.09-0.11 ms on CIFAR-10, 0
  # predictions differ between modes; the tree proof's host_graph ~0.25-0.35 ms (host_staged 0.44 in session 17).
  R=/tmp/default26; train_served
  serve $OUT/default26 run_a --latency_modes=  # empty: the defaults (serve's own list would override them)
  serve $OUT/default26 run_b --latency_modes= --nowrite_exported
  bash kernels/h100_imagenet_next.sh serve_tree | tail -14
fi
if [ "$part" = graph27 ]; then
  # Eighteenth session, after default26 (host_graph polled 0.107-0.128 ms there, 0.095-0.097 in graph25 on another
  # machine): a third machine's sample of the defaults in both mode orders, the weights passed as arguments (the
  # program's token is then its second argument; BERT-size models take this path), and the trace with its JSON (call
  # 2's did not come back). Predicted: host_graph 0.09-0.13 ms; arguments ~+0.03-0.05 ms (the 27-leaf pytree per
  # call, session 8); 0 predictions differ.
  R=/tmp/graph27; train_served
  off="--throughput_batch=0 --bound_items=0 --nowrite_exported"
  serve $OUT/graph27 run_a --latency_modes= $off
  serve $OUT/graph27 run_b --latency_modes=device,host,host_staged,host_graph $off
  serve $OUT/graph27 args --latency_modes=host_graph,host_staged,device --weights=arguments $off
  trace_requests $OUT/graph27 27 --top=24 --host_modes=host_staged,host_graph
fi
if [ "$part" = final28 ]; then
  # Eighteenth session, last call: the session's final code (host_graph and host_staged buffers through
  # latency.PinnedArray; default_modes tries the handlers' build) with the defaults, native and exported, throughput
  # and bounds, in both mode orders. Predicted: host_graph 0.095-0.13 ms, 0 predictions differ.
  R=/tmp/final28; train_served
  serve $OUT/final28 run_a --latency_modes=
  serve $OUT/final28 run_b --latency_modes=device,host,host_staged,host_graph --nowrite_exported --throughput_batch=0 \
    --bound_items=0
fi
if [ "$part" = overlap29 ]; then
  # Eighteenth session (issue 3): a warm start spends ~0.2 s on the data (mostly cuMemHostAlloc of the upload's
  # pinned staging buffer) before 0.5-0.6 s of program loading (session 15's trace). --overlap_upload (built in
  # session 18, off by default until this part has run) runs the upload on a thread while the programs load; the
  # wait left after them is data time. One cache fill, then 16 warm processes, with and without in ABBA order.
  # Predicted: warm wall -0.1..-0.2 s, data s 0.2 -> ~0.0; timed unchanged. Run in session 19.
  { echo "cache_fill 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache"
    n=0
    for arm in on off off on on off off on on off off on on off off on; do
      n=$((n + 1)); flag=--overlap_upload; [ $arm = on ] || flag=--nooverlap_upload
      echo "warm_${arm}_$n 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache $flag"
    done; } | bash kernels/h100_cifar_speed_ab.sh
  # The table above rounds to 0.1 s; the arms' figures to the millisecond, from each run's summary.json.
  python3 - $OUT/runs <<'PY' | tee $OUT/overlap29.txt
import glob, json, os, re, statistics as st, sys
rows = {'on': [], 'off': []}
for d in sorted(glob.glob(sys.argv[1] + '/warm_*/'), key=lambda d: int(re.findall(r'_(\d+)/$', d)[0])):
  s = json.load(open(d + 'summary.json'))
  b = s['wall_breakdown_seconds']
  log = open(d.rstrip('/') + '.log').read()
  process = float(re.findall(r'process_wall ([\d.]+)', log)[-1])
  arm = 'on' if '_on_' in d else 'off'
  r = {'wall': s['wall_seconds'], 'process': process, 'data': s['data_load_seconds'], 'startup': b['startup'],
       'compile': s['compile_seconds'], 'seeds': b['seeds_and_reporting'], 'timed': s['timed_seconds']['mean'],
       'acc': s['accuracy']['mean']}
  rows[arm].append(r)
  print(f"{os.path.basename(d.rstrip('/')):14s} " + ' '.join(f'{k} {v:.3f}' for k, v in r.items()))
for arm, rs in rows.items():
  print(f'overlap {arm:3s} ({len(rs)} processes): ' + ' '.join(
      f'{k} {st.mean(r[k] for r in rs):.3f}+-{st.pstdev(r[k] for r in rs):.3f}' for k in rs[0]))
PY
fi
if [ "$part" = nodes30 ]; then
  # Nineteenth session (issue 6): what one more CUDA-graph node costs, host and device, without the profiler
  # (kernels/graph_nodes_probe.py): chains of 1-64 fusions or cuDNN convs, command buffers on (the benchmark's
  # flags) and off. Predicted from session 18's traces: ~2 us of device gap per node, and a host launch that grows
  # by ~1-3 us per node (cuGraphLaunch 40-55 us for CIFAR's 21 nodes, 178-211 us for ResNet-50's 68, traced).
  mkdir -p $OUT/nodes30
  for cb in on off; do
    flags=--xla_gpu_enable_command_buffer=+CONVOLUTION; [ $cb = on ] || flags=--xla_gpu_enable_command_buffer=
    XLA_FLAGS=$flags python3 kernels/graph_nodes_probe.py --json=$OUT/nodes30/$cb.json --trace_dir=/tmp/gn_$cb \
      2>&1 | grep -v '^[IW]1' | tee $OUT/nodes30/$cb.log
  done
fi
if [ "$part" = copies30 ]; then
  # Nineteenth session (issue 6): part nodes30 found ~0.05-0.25 us of device gap per kernel node inside a CUDA
  # graph, yet host_graph's device span is ~95-105 us for ~59 us of kernels (the device-resident program's: 60 us
  # for 53). The extra ~40 us sits around its three copy-engine nodes. --graph_io_copies=kernel makes the copies
  # kernels that read and write the pinned host buffers themselves. Predicted: device span -25..-40 us, host_graph
  # polled -0.02..-0.04 ms; 0 predictions differ. The trace's new gap table names the transitions that hold the
  # span, for both ways; then the benchmark with each way, in both orders.
  mkdir -p $OUT/copies30
  R=/tmp/copies30; train_served
  off="--throughput_batch=0 --bound_items=0 --nowrite_exported"
  serve $OUT/copies30 kernel_a --latency_modes= --graph_io_copies=kernel
  serve $OUT/copies30 memcpy_a --latency_modes= --graph_io_copies=memcpy
  serve $OUT/copies30 memcpy_b --latency_modes=host_graph,host_staged --graph_io_copies=memcpy $off
  serve $OUT/copies30 kernel_b --latency_modes=host_graph,host_staged --graph_io_copies=kernel $off
  trace_requests $OUT/copies30 30 --top=24 --host_modes=host_staged,host_graph --graph_io_copies=memcpy,kernel ||
    trace_requests $OUT/copies30 30 --top=24 --host_modes=host_staged,host_graph
  grep -A12 'host_graph.*gaps in the device span' $OUT/copies30/trace.log
fi
if [ "$part" = copies31 ]; then
  # Nineteenth session (issue 6): copies30 measured host_graph with kernel copies 0.079 / 0.098 ms (native /
  # exported) against memcpy 0.090 / 0.104 on one machine, one process each way and order. Eight processes
  # alternating (ABBA twice), host_graph alone, native. Predicted: kernel 0.005-0.012 ms below memcpy in every pair.
  mkdir -p $OUT/copies31
  R=/tmp/copies31; train_served
  off="--throughput_batch=0 --bound_items=0 --nowrite_exported --latency_modes=host_graph"
  n=0
  for copies in kernel memcpy memcpy kernel kernel memcpy memcpy kernel; do
    n=$((n + 1)); serve $OUT/copies31 ${copies}_$n --graph_io_copies=$copies $off | grep -E '^==|^native'
  done
fi
if [ "$part" = affinity32 ]; then
  # Nineteenth session (issue 6): host_graph runs come out at ~0.075-0.08 ms or ~0.105 ms per whole process
  # (copies31: kernel_8 0.1076 with p50 0.106 after three at 0.075-0.079). Is it where the process's threads run
  # relative to the GPU? The machine's topology, then processes pinned (taskset) to each half of the CPUs in turn.
  # Predicted: if the host has two NUMA nodes, one half is ~0.03 ms slower in every run; else no difference.
  mkdir -p $OUT/affinity32
  { lscpu; nvidia-smi topo -m; cat /sys/bus/pci/devices/*/local_cpulist 2>/dev/null | sort | uniq -c; } \
    > $OUT/affinity32/topology.txt 2>&1
  grep -E 'NUMA|Socket|Model name' $OUT/affinity32/topology.txt
  R=/tmp/affinity32; train_served
  off="--throughput_batch=0 --bound_items=0 --nowrite_exported --latency_modes=host_graph"
  half=$(( $(nproc) / 2 ))
  n=0
  for cpus in 0-$((half - 1)) $half-$((2 * half - 1)) $half-$((2 * half - 1)) 0-$((half - 1)) 0-$((half - 1)) \
      $half-$((2 * half - 1)); do
    n=$((n + 1)); echo "== cpus $cpus"
    taskset -c $cpus bash -c "$(declare -f serve); R=$R; serve $OUT/affinity32 cpus_${cpus}_$n $off" | grep -E '^native'
  done
fi
if [ "$part" = affinity33 ]; then
  # Nineteenth session (issue 6): affinity32 found one NUMA node, and six pinned processes all at 0.0747-0.0758 ms
  # (either half), where one of four unpinned processes in copies31 ran at 0.108. Ten processes alternating
  # unpinned and pinned to CPUs 0-7. Predicted: no difference (one NUMA node), unless the slow runs come from the
  # threads' placement itself.
  mkdir -p $OUT/affinity33
  R=/tmp/affinity33; train_served
  off="--throughput_batch=0 --bound_items=0 --nowrite_exported --latency_modes=host_graph"
  for n in 1 2 3 4 5; do
    echo "== unpinned"; serve $OUT/affinity33 free_$n $off | grep -E '^native'
    echo "== cpus 0-7"; taskset -c 0-7 bash -c "$(declare -f serve); R=$R; serve $OUT/affinity33 pinned_$n $off" \
      | grep -E '^native'
  done
fi
if [ "$part" = confirm34 ]; then
  # Twentieth session, second H100 call: h100_12 (the first H100 since 2026-11-23) met both goals on one machine
  # (0.8503 / 0.8489 s timed at 90.58 / 90.57%; host_graph 0.079-0.095 ms). The same on whichever H100 comes next,
  # this time keeping every run's files under runs/: 20 seeds once, the served model's defaults twice (no
  # exported path, throughput or bounds). Predicted: within ~6% of the first machine (machines of one kind differ
  # by about that), so 0.83-0.90 s and 0.08-0.10 ms.
  echo "final20_m2 20 -- $RECIPE" | bash kernels/h100_cifar_speed_ab.sh
  R=$OUT/runs/confirm34; train_served
  for run in a b; do
    serve $R serve_$run --latency_modes= --nowrite_exported --throughput_batch=0 --bound_items=0 | grep -E '^==|^native|reported'
  done
fi
if [ "$part" = round3 ]; then
  # round2 measured: 1.2019 s 90.67% at 7.63 epochs, 1.1455 s 90.62% at 7.3 (20 seeds each).
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
r3_e70_20 20 -- $RECIPE --epochs=7.0
r3_e715_20 20 -- $RECIPE --epochs=7.15
VARIANTS
  part=wall
fi
if [ "$part" = final ]; then
  # The adopted fast.flags (pruning measured: 1.0508 s vs 1.1631 s): 7.15 epochs over 20 seeds,
  # then a profile of RECIPE as below.
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
final_e715_20 20 -- $RECIPE --epochs=7.15
VARIANTS
fi
if [ "$part" = round2 ] || [ "$part" = final ]; then
  # --profile_epochs=3:4 is 2 epochs: 50 steps of airbench's 2000, 64 of hiverge's 1536. Calls 2
  # and 6 of 2026-11-23 ran with --per=50, so their per-step figures are 1.28x too large; now auto.
  profile $part $RECIPE
  [ "$part" = round2 ] && part=wall
fi
if [ "$part" = profile ] || [ "$part" = profile_ab ]; then
  for v in base:--pool_impl=reshape argmax:--pool_impl=argmax fused:--bn_impl=fused; do
    profile ${v%%:*} --flagfile=experiments/cifar10/airbench94_muon_fast.flags ${v#*:}
  done
fi
if [ "$part" = ab ] || [ "$part" = profile_ab ]; then
  bash kernels/h100_cifar_speed_ab.sh <<'VARIANTS'
base20 20 -- --flagfile=experiments/cifar10/airbench94_muon_fast.flags
argmax20 20 -- --flagfile=experiments/cifar10/airbench94_muon_fast.flags --pool_impl=argmax
fused20 20 -- --flagfile=experiments/cifar10/airbench94_muon_fast.flags --bn_impl=fused
both20 20 -- --flagfile=experiments/cifar10/airbench94_muon_fast.flags --pool_impl=argmax --bn_impl=fused
hiverge20 20 -- --flagfile=experiments/cifar10/hiverge.flags
VARIANTS
elif [ "$part" = wall ]; then
  bash kernels/h100_cifar_speed_ab.sh <<VARIANTS
notriton1 1 XLA_FLAGS=--xla_gpu_enable_triton_gemm=false -- $RECIPE
cold1 1 -- $RECIPE --export_model
cache_fill 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache
cache_warm 1 -- $RECIPE --compilation_cache_dir=/tmp/jaxcache
VARIANTS
  python3 -m dawnjax.experiments.inference --task=cifar10 --checkpoint=$OUT/runs/cold1 \
    --data_dir=.data/cifar10-jpeg.tar.gz --cache_dir=/tmp/cache --output_dir=$OUT/runs/infer 2>&1 \
    | grep -v '^[IW]1' | tail -15
  rm -rf $OUT/runs/cold1/model $OUT/runs/infer/exported
fi
# One archive: the device tool brings back only a handful of files per call.
cd $OUT && tar czf runs.tgz runs && rm -rf runs
