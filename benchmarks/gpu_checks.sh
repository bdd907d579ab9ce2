#!/usr/bin/env bash
# The GPU checks in one run on a CUDA machine, for docs/performance.md: the CUDA tests (precision,
# compile, channels_last, resume; pix2pix and CycleGAN), bench.py against the official layout and per
# batch size (fp32 and bf16 against the measured matmul ceiling), one epoch in 2 NCCL processes where
# there are 2 GPUs, and the paper's 256 px facades recipe for as long as TRAIN_MINUTES allows, stopped as a pre-empted
# job is (SIGTERM: it checkpoints) and evaluated on the held-out split with the FCN-score.
#
#     benchmarks/gpu_checks.sh DATA_ROOT OUT_DIR [TRAIN_MINUTES]     # DATA_ROOT holds facades/
#     DEVICE=cpu benchmarks/gpu_checks.sh DATA_ROOT OUT_DIR 1          # the same steps on the CPU: a dry run
#
# Runs from a checkout without installing it (PYTHONPATH), with the python3 that has torch, so a machine
# without a package registry can run it. Everything it measures lands in OUT_DIR: checks.log (every
# command's output), and the facades run's config.json, log.csv and metrics.json.
set -uo pipefail
DATA_ROOT=$(realpath "$1") TRAIN_MINUTES=${3:-3} DEVICE=${DEVICE:-cuda}
mkdir -p "$2" && OUT_DIR=$(realpath "$2")
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

step "machine" -- bash -c 'nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch; print(torch.__version__, torch.version.cuda)"'
step "CUDA tests" -- python3 -m pytest -q -p no:cacheprovider tests/test_precision.py
step "bench: ours against the official layout" -- python3 benchmarks/bench.py --device "$DEVICE"
step "bench: batch sizes" -- python3 benchmarks/bench.py --batches 1 16 64 --device "$DEVICE"
run=runs/gpu_checks/facades_paper
rm -rf "$run" runs/gpu_checks/ddp
[ -d datasets/facades ] || step "holdout (the studies' split)" -- \
    python3 -m pix2pix data holdout "$DATA_ROOT/facades" --out datasets/facades --fraction 0.1 --seed 0
if [ "$(python3 -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then  # one epoch, DDP over NCCL
    step "2 NCCL processes" -- python3 -m torch.distributed.run --standalone --nproc_per_node=2 \
        -m pix2pix train --config configs/facades_cpu.toml --out runs/gpu_checks/ddp --device "$DEVICE" --n-epochs 1 --n-epochs-decay 0 --quiet
fi
# 75: stopped by the timeout's SIGTERM after writing its checkpoint, resumable (docs/training.md#exit-codes)
step "train facades_paper for ${TRAIN_MINUTES} min" 75 -- timeout --preserve-status --signal=TERM --kill-after=60 "${TRAIN_MINUTES}m" \
    python3 -m pix2pix train --config configs/facades_paper.toml --out "$run" --device "$DEVICE" --quiet
step "eval" -- python3 -m pix2pix eval --checkpoint "$run" --split val --device "$DEVICE" --quiet \
    --fcn-score on --fcn-segmenter experiments/records/segmenters/facades.pt
for file in config.json log.csv eval-val/metrics.json; do
    [ -f "$run/$file" ] && cp "$run/$file" "$OUT_DIR/"
done
echo "=== done; failed steps: ${failed[*]:-none}" | tee -a "$LOG"
[ ${#failed[@]} = 0 ]
