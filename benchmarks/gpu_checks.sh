#!/usr/bin/env bash
# The GPU checks in one run on a CUDA machine, for docs/performance.md, in parts:
#   tests      the CUDA tests (precision, compile, channels_last, resume; pix2pix and CycleGAN)
#   bench      bench.py against the official layout, and per batch size (fp32 and bf16 against the
#              measured matmul ceiling)
#   nccl       one epoch in 2 NCCL processes under torchrun (skipped with fewer than 2 GPUs)
#   paper=M    the paper's 256 px facades recipe for M minutes, stopped as a pre-empted job is (SIGTERM:
#              it checkpoints), evaluated on the held-out split with the FCN-score
#   studies=A,B  experiments/studies.py A B: the runs a CPU would take hours over, recorded as they finish
#
#     benchmarks/gpu_checks.sh DATA_ROOT OUT_DIR                         # tests bench nccl paper=3
#     benchmarks/gpu_checks.sh DATA_ROOT OUT_DIR studies=cyclegan,cyclegan_photo2labels
#     DEVICE=cpu benchmarks/gpu_checks.sh DATA_ROOT OUT_DIR tests paper=1  # the same steps on the CPU: a dry run
#
# DATA_ROOT holds facades/. Runs from a checkout without installing it (PYTHONPATH), with the python3 that
# has torch, so a machine without a package registry can run it. What it measures lands in OUT_DIR:
# checks.log (every command's output); for paper, the run's config.json, log.csv and metrics.json; for
# studies, records.tar.gz (experiments/records and docs/studies, to unpack over the checkout).
set -uo pipefail
DATA_ROOT=$(realpath "$1") DEVICE=${DEVICE:-cuda}
mkdir -p "$2" && OUT_DIR=$(realpath "$2")
shift 2
PARTS=("$@")
[ ${#PARTS[@]} -gt 0 ] || PARTS=(tests bench nccl paper=3)
for part in "${PARTS[@]}"; do  # every part checked before the first runs: a typo must not cost a GPU run
    case $part in
        tests | bench | nccl | paper=[1-9]* | studies=?*) ;;
        *) echo "unknown part $part; expected tests, bench, nccl, paper=MINUTES, studies=A,B" >&2 && exit 2 ;;
    esac
done
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
LOG=$OUT_DIR/checks.log
failed=()

step() {  # step NAME [EXPECTED] -- COMMAND...: run it, its output to the log; note a failure, go on
    local name=$1 expected=0
    shift
    [ "$1" != -- ] && expected=$1 && shift
    shift
    echo "=== $name ($(date -u +%FT%TZ))" | tee -a "$LOG"
    "$@" 2>&1 | tee -a "$LOG"
    local status=${PIPESTATUS[0]}
    [ "$status" = 0 ] || [ "$status" = "$expected" ] || failed+=("$name: $status")
    return 0
}

holdout() {  # the studies' validation split of facades, carved once (as experiments/studies.py carves it)
    [ -d datasets/facades ] || step "holdout (the studies' split)" -- \
        python3 experiments/studies.py objectives --prepare-only --data-root "$DATA_ROOT"
}

tests() {
    step "CUDA tests" -- python3 -m pytest -q -p no:cacheprovider tests/test_precision.py
}

bench() {
    step "bench: ours against the official layout" -- python3 benchmarks/bench.py --device "$DEVICE"
    step "bench: batch sizes" -- python3 benchmarks/bench.py --batches 1 16 64 --device "$DEVICE"
}

nccl() {
    [ "$(python3 -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ] || return 0
    holdout
    rm -rf runs/gpu_checks/ddp
    step "2 NCCL processes" -- python3 -m torch.distributed.run --standalone --nproc_per_node=2 \
        -m pix2pix train --config configs/facades_cpu.toml --out runs/gpu_checks/ddp --device "$DEVICE" \
        --n-epochs 1 --n-epochs-decay 0 --quiet
}

paper() {  # paper MINUTES
    local run=runs/gpu_checks/facades_paper
    holdout
    rm -rf "$run"
    # 75: stopped by the timeout's SIGTERM after writing its checkpoint, resumable (docs/training.md#exit-codes)
    step "train facades_paper for $1 min" 75 -- timeout --preserve-status --signal=TERM --kill-after=60 "$1m" \
        python3 -m pix2pix train --config configs/facades_paper.toml --out "$run" --device "$DEVICE" --quiet
    step "eval" -- python3 -m pix2pix eval --checkpoint "$run" --split val --device "$DEVICE" --quiet \
        --fcn-score on --fcn-segmenter experiments/records/segmenters/facades.pt
    for file in config.json log.csv eval-val/metrics.json; do
        [ -f "$run/$file" ] && cp "$run/$file" "$OUT_DIR/"
    done
}

studies() {  # studies A,B
    step "studies: $1" -- python3 experiments/studies.py ${1//,/ } --data-root "$DATA_ROOT"
    tar -czf "$OUT_DIR/records.tar.gz" experiments/records docs/studies
}

step "machine" -- bash -c 'nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
    python3 -c "import torch; print(\"torch\", torch.__version__, \"CUDA\", torch.version.cuda)"; nproc'
for part in "${PARTS[@]}"; do
    case $part in
        tests | bench | nccl) "$part" ;;
        paper=[1-9]*) paper "${part#paper=}" ;;
        studies=*) studies "${part#studies=}" ;;
    esac
done
echo "=== done; failed steps: ${failed[*]:-none}" | tee -a "$LOG"
[ ${#failed[@]} = 0 ]
