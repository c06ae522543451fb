#!/usr/bin/env bash
# The study on a lent GPU (docs/performance.md, "One GPU lease").
#
# The lent machine has JAX with CUDA and no TensorFlow or Keras: Keras travels as wheels
# (.wheels/) and the data as .data/ (both made here by `prepare`, both ignored by git);
# keras_attn runs from the checkout (PYTHONPATH=src).
#
#   bash examples/gpu/lease.sh prepare    # here, before the lease: .wheels/ and .data/
#   bash examples/gpu/lease.sh run        # one device call: a short preflight, then the
#                                         # study with the time left, stopping before LIMIT
#   bash examples/gpu/lease.sh preflight  # a device call of its own, at most 5 minutes:
#                                         # the trainer's forms, group sizes and precisions
#   bash examples/gpu/lease.sh study      # the study alone, with the time left
#   bash examples/gpu/lease.sh report     # here, after: unpack the records, report, README
#
# Every device call carries .wheels and .data/cifar10-jpeg.tar.gz (not all of .data: its
# decode cache is large). What it measures is written under OUT as it
# goes: the preflight's rows as JSON lines, the study's log, and the records' archive,
# rewritten every ARCHIVE_EVERY seconds (written, then renamed), so a call cut at its limit
# still brings back every finished run. A second call carries on where the first stopped.
#
# Settings (environment):
#   OUT            where results go ($OUT on the device machine; default /tmp/lease-out)
#   LIMIT          seconds the call may take in all, the machine's start not counted
#                  (default 570: a call's 600 less a margin); the script stops before it
#   PREFLIGHT      seconds of preflight in `run` (default 90)
#   DATA           the CIFAR-10 JPEG copy (default .data/cifar10-jpeg.tar.gz)
#   RESULTS        the study's folder (default results/cifar10)
#   ARCHIVE_EVERY  seconds between rewrites of OUT/records.tar.gz (default 60)
#   WHEELS         the wheels' folder (default .wheels)
#   COMPILE_CACHE  XLA's compilation cache, kept between calls on one machine
#                  (default .xla-cache)
#   TINY=1         tiny settings, for checking this script on a CPU (tests/test_jax_only.py)
set -euo pipefail

cmd=${1:-}
START=$SECONDS
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WHEELS=${WHEELS:-.wheels}
OUT=${OUT:-/tmp/lease-out}
LIMIT=${LIMIT:-570}
PREFLIGHT=${PREFLIGHT:-90}
DATA=${DATA:-.data/cifar10-jpeg.tar.gz}
RESULTS=${RESULTS:-results/cifar10}
ARCHIVE_EVERY=${ARCHIVE_EVERY:-60}
COMPILE_CACHE=${COMPILE_CACHE:-.xla-cache}
PY=${PYTHON:-python3}
# The study's nine variants, then the two conv-AE ablations (plan.balanced_order puts the
# study's first in each stage whatever the order here).
MODELS=cnn,cnn3,cnn_eca,cnn_cbam,cnn_cbam_spatial_eca,cnn_conv_ae,cnn_conv_ae_eca
MODELS=$MODELS,cnn_linear_ae,cnn_linear_ae_eca,cnn_conv_ae_const,cnn_conv_ae_he
KERAS_WHEELS="keras==3.15.1 namex optree"
SHARED_DATA=${SHARED_DATA:-../shared/data/cifar10-jpeg.tar.gz}

left() { echo $((LIMIT - (SECONDS - START))); }

setup() {
    export KERAS_BACKEND=jax TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1
    if ! "$PY" -c "import keras" 2>/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --upgrade --target /tmp/lease-pylib \
            "$WHEELS"/*.whl
        export PYTHONPATH=/tmp/lease-pylib${PYTHONPATH:+:$PYTHONPATH}
    fi
    export PYTHONPATH=$REPO/src${PYTHONPATH:+:$PYTHONPATH}
    mkdir -p "$OUT"
    "$PY" -c "import jax; print('devices:', jax.devices())" | tee -a "$OUT/devices.txt"
}

# The preflight's rows: `full` is the whole grid (a call of its own), `short` fits `run`.
preflight() {
    local budget=$1 grid=$2 small=() rows
    if [ "${TINY:-}" = 1 ]; then
        small=(--images 32 --batch-size 8 --epochs 1 --override 'blocks=[4,8]'
            --override 'dense_units=8' --study-models cnn,cnn_conv_ae_const)
        rows=(--models cnn --groups 2 --grad-forms per_run,summed --epoch-forms steps
            --trainers jax)
    elif [ "$grid" = full ]; then
        small=(--images 8192 --batch-size 128 --epochs 2 --study-models "$MODELS")
        rows=(--models cnn --groups 8,16 --grad-forms per_run,summed --epoch-forms scan,steps
            --precisions default,bf16 --trainers jax)
    else
        small=(--images 8192 --batch-size 128 --epochs 2 --study-models "$MODELS")
        rows=(--models cnn --groups 16 --grad-forms summed,per_run --epoch-forms scan
            --trainers jax)
    fi
    # The deadline keeps rows from starting late; timeout is the backstop.
    timeout "$((budget + 30))" "$PY" -m keras_attn benchmark-trainers "${rows[@]}" "${small[@]}" \
        --deadline "$budget" --jsonl "$OUT/preflight.jsonl" 2>&1 | tee -a "$OUT/preflight.log"
}

pack() {  # the records' archive, written then renamed: always a whole one under OUT
    [ -d "$RESULTS/records" ] || return 0
    tar -C "$RESULTS" -czf "$OUT/records.tar.gz.tmp" records settings  # relative to RESULTS
    mv -f "$OUT/records.tar.gz.tmp" "$OUT/records.tar.gz"
}

study() {
    local reserve=25 budget status=0 packer
    budget=$(($(left) - reserve))
    if [ "$budget" -lt 30 ]; then
        echo "study: only ${budget}s left before the limit; not started" | tee -a "$OUT/study.log"
        return 0
    fi
    local args=(--backend jax --models "$MODELS" --data-dir "$DATA" --out "$RESULTS"
        --time-budget "$budget" --no-weights --progress-every 0 --no-report
        --compile-cache "$COMPILE_CACHE" --cache-dir "${CACHE_DIR:-.data/cache}")
    if [ "${TINY:-}" = 1 ]; then
        args+=(--models cnn,cnn_conv_ae_const --runs 2 --epochs 2 --batch-size 8 --val-size 8
            --override 'blocks=[4,8]' --override 'dense_units=8')
    fi
    (while sleep "$ARCHIVE_EVERY"; do pack; done) &
    packer=$!
    # timeout is the backstop: the budget starts no group that would end after it.
    timeout "$((budget + reserve - 10))" "$PY" -m keras_attn protocol "${args[@]}" \
        > >(tee -a "$OUT/study.log") 2>&1 || status=$?
    kill "$packer" 2>/dev/null || true
    wait "$packer" 2>/dev/null || true
    pack
    if [ "$status" = 124 ]; then
        echo "study: stopped at the limit; the finished runs are in the archive, a rerun" \
            "continues" | tee -a "$OUT/study.log"
        return 0
    fi
    if [ "$status" != 0 ]; then
        echo "study: failed (exit $status); see $OUT/study.log" >&2
    fi
    return "$status"
}

case "$cmd" in
prepare)
    "$PY" -m pip download -q --only-binary=:all: --no-deps --python-version 3.12 \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d "$WHEELS" \
        $KERAS_WHEELS
    mkdir -p .data
    if [ ! -e .data/cifar10-jpeg.tar.gz ] && [ -e "$SHARED_DATA" ]; then
        cp "$SHARED_DATA" .data/
    fi
    ls "$WHEELS" .data
    ;;
run)
    setup
    preflight "$PREFLIGHT" short || echo "preflight: failed (exit $?); the study goes on"
    study
    ;;
preflight)
    setup
    preflight "$(($(left) - 30))" full
    ;;
study)
    setup
    study
    ;;
report)
    mkdir -p "$RESULTS"
    tar -xzf "${RECORDS:-$OUT/records.tar.gz}" -C "$RESULTS"
    "$PY" -m keras_attn report "$RESULTS" --readme "${README:-README.md}"
    ;;
*)
    echo "usage: bash examples/gpu/lease.sh prepare|run|preflight|study|report" >&2
    exit 2
    ;;
esac
