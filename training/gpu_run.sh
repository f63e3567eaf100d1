#!/usr/bin/env bash
# Issue #10's one prepared GPU run: train refocus's larger variant (recipe refocus-large) on scenes rendered
# on the GPU from packed photos, within a fixed budget of seconds, and leave in OUT what must come back.
#
# Why a script: a lent GPU gives a session about 15 minutes of device time in all, machine start included, so
# the run must be prepared and tested here, on the CPU, with the very same script, and then go in one call.
# The step count is set by a 40-step probe, so the cosine schedule ends inside the budget whatever the chip.
#
# Prepare here (the training photos only; held-out photos must not be packed):
#   python -m training.pack_photos data/train_src -o gpu/photos --max-mib 40
#   defocus data synth --src gpu/photos -o gpu/val -n 50 --size 256 --seed 5 --val-frac 0.9 --test-frac 0
#   echo /gpu/ >> .git/info/exclude
# Test here, on the CPU, a few steps of a small batch:
#   DEVICE=cpu PRECISION=fp32 WORKERS=1 BUDGET_S=20 EXTRA="--batch 2 --crop 64" bash training/gpu_run.sh gpu /tmp/gpu-out
# There (carry: gpu):
#   bash training/gpu_run.sh gpu $OUT
# Back here: cat OUT/final.safetensors.part-* > final.safetensors, then benchmarks/heldout_bins.py,
# refocus_grid.py and colour_shift.py with --weights refocus=final.safetensors.
#
# Environment: BUDGET_S (training seconds, default 300), STEPS (skip the probe), DEVICE (cuda), PRECISION
# (bf16), WORKERS (12 scene-drawing processes), EXTRA (more `defocus train` options, e.g. --batch 64).
set -euo pipefail
data=${1:?usage: gpu_run.sh DATA_DIR OUT_DIR}
out=${2:?usage: gpu_run.sh DATA_DIR OUT_DIR}
budget=${BUDGET_S:-300}
steps=${STEPS:-}
work=$(mktemp -d)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$out"

train() {
    # shellcheck disable=SC2086  # EXTRA is a list of options
    python3 -m deblurcli train --recipe refocus-large --data "live:$data/photos" --val "synth:$data/val" \
        --device "${DEVICE:-cuda}" --precision "${PRECISION:-bf16}" --workers "${WORKERS:-12}" ${EXTRA:-} "$@"
}

{
    python3 -c 'import torch; print("torch", torch.__version__, "| cuda:", torch.cuda.is_available() and torch.cuda.get_device_name())'
    if [ -z "$steps" ]; then
        train --out "$work/probe" --iters 40 --val-count 0 --ckpt-every 1000
        # seconds per step over steps 10-40: start-up and the first kernels' compilation left out
        steps=$(python3 - "$work/probe/log.csv" "$budget" <<'PY'
import csv, sys
rows = {int(r["step"]): float(r["seconds"]) for r in csv.DictReader(open(sys.argv[1]))}
per_step = (rows[40] - rows[10]) / 30
print(max(20, int(float(sys.argv[2]) / per_step)))
PY
)
    fi
    echo "training $steps steps"
    train --out "$work/run" --iters "$steps" --val-every $(((steps + 3) / 4)) --val-count 45 --ckpt-every "$steps"
} 2>&1 | tee "$out/train.log"

cp "$work/run/log.csv" "$work/run/val.csv" "$work/run/summary.json" "$out/"
# at most 16 MiB per file comes back: the fp32 weights of the large variant (36 MB) travel in parts
split -b 15m -d "$work/run/final.safetensors" "$out/final.safetensors.part-"
ls -l "$out"
