#!/usr/bin/env bash
# The study in one GPU lease (issue 19; docs/performance.md, "One GPU lease").
#
# The lent machine has JAX with CUDA and no TensorFlow or Keras: Keras travels as wheels
# (.wheels/, made here by `prepare`), keras_attn runs from the checkout (PYTHONPATH).
#
#   bash examples/gpu/lease.sh prepare   # here, before the lease: Keras' wheels into .wheels/
#   bash examples/gpu/lease.sh bench     # device call 1 (~3 min): old and new trainers side
#                                        # by side, default (TF32) / float32 / bf16, groups 1-16
#   bash examples/gpu/lease.sh study     # device call 2: the study under --time-budget into
#                                        # results/cifar10; records back as $OUT/records.tar.gz
#   bash examples/gpu/lease.sh report    # here, after: unpack the records, report, README block
#
# Each device call carries .wheels (and the data, see DATA). Settings (environment):
#   OUT     where results go ($OUT on the device machine; default /tmp/lease-out)
#   DATA    the CIFAR-10 JPEG copy (default shared/data/cifar10-jpeg.tar.gz)
#   BUDGET  the study's time budget (default 6m: the call's 10 minutes less start-up, data
#           loading and the last group, which the budget never cuts)
#   STUDY_TIMEOUT  seconds after which the study is stopped anyway, so that the records
#           still come back (default 540; an interrupted group resumes on the next lease)
#   TINY=1  tiny settings, for checking this script on a CPU (tests/test_lease_script.py)
set -euo pipefail

cmd=${1:-}
OUT=${OUT:-/tmp/lease-out}
DATA=${DATA:-shared/data/cifar10-jpeg.tar.gz}
BUDGET=${BUDGET:-6m}
PY=${PYTHON:-python3}
RESULTS=${RESULTS:-results/cifar10}
# The study's nine variants, then the two conv-AE ablations (plan.balanced_order puts the
# study's first in each stage whatever the order here).
MODELS=cnn,cnn3,cnn_eca,cnn_cbam,cnn_cbam_spatial_eca,cnn_conv_ae,cnn_conv_ae_eca
MODELS=$MODELS,cnn_linear_ae,cnn_linear_ae_eca,cnn_conv_ae_const,cnn_conv_ae_he
KERAS_WHEELS="keras==3.15.1 namex optree"

setup() {
    export KERAS_BACKEND=jax TF_CPP_MIN_LOG_LEVEL=3
    if ! "$PY" -c "import keras" 2>/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --target /tmp/lease-pylib .wheels/*.whl
        export PYTHONPATH=/tmp/lease-pylib${PYTHONPATH:+:$PYTHONPATH}
    fi
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
    mkdir -p "$OUT"
    "$PY" -c "import jax; print('devices:', jax.devices())" | tee "$OUT/devices.txt"
}

case "$cmd" in
prepare)
    "$PY" -m pip download -q --only-binary=:all: --no-deps --python-version 3.12 \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d .wheels $KERAS_WHEELS
    ls .wheels
    ;;
bench)
    setup
    if [ "${TINY:-}" = 1 ]; then
        small=(--images 32 --batch-size 8 --epochs 1 --override 'blocks=[4,8]'
            --override 'dense_units=8')
        groups=1,2 models=cnn precisions=default,bf16 study=cnn,cnn_conv_ae_const
    else
        small=(--images 8192 --batch-size 128 --epochs 2)
        groups=1,4,8,16 models=cnn,cnn_conv_ae precisions=default,float32,bf16 study=$MODELS
    fi
    # model.fit (one model; the packed model for 8), then the JAX trainer in every precision.
    "$PY" -m keras_attn benchmark-trainers --models cnn --trainers fit --groups 1,${groups##*,} \
        --study-models "$study" "${small[@]}" --json "$OUT/bench_fit.json" | tee "$OUT/bench.txt"
    "$PY" -m keras_attn benchmark-trainers --models "$models" --trainers jax \
        --groups "$groups" --precisions "$precisions" --study-models "$study" \
        "${small[@]}" --json "$OUT/bench_jax.json" | tee -a "$OUT/bench.txt"
    ;;
study)
    setup
    args=(--backend jax --models "$MODELS" --data-dir "$DATA" --out "$RESULTS"
        --time-budget "$BUDGET" --no-weights --progress-every 0 --no-report)
    if [ "${TINY:-}" = 1 ]; then
        args+=(--models cnn,cnn_conv_ae_const --runs 2 --epochs 1 --batch-size 8 --val-size 8
            --override 'blocks=[4,8]' --override 'dense_units=8')
    fi
    timeout "${STUDY_TIMEOUT:-540}" "$PY" -m keras_attn protocol "${args[@]}" 2>&1 |
        tee "$OUT/study.log" || echo "study stopped early (exit $?); records so far come back"
    tar -czf "$OUT/records.tar.gz" "$RESULTS/records" "$RESULTS/settings"
    ;;
report)
    tar -xzf "${RECORDS:-$OUT/records.tar.gz}"
    "$PY" -m keras_attn report "$RESULTS" --readme "${README:-README.md}"
    ;;
*)
    echo "usage: bash examples/gpu/lease.sh prepare|bench|study|report" >&2
    exit 2
    ;;
esac
