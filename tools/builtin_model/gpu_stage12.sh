#!/usr/bin/env bash
# Stages 12 and 13 of pconv-photos-small on one CUDA GPU, each in one timed go: build the held-out evaluation set, train
# from INIT for SECONDS (then SIGINT: the trainer finishes its step and writes a checkpoint), and score the
# new and the starting weights on the evaluation set (model only; the OpenCV baselines do not depend on the
# model and come from a CPU report: card_table.py --baselines-from).
#
#   bash tools/builtin_model/gpu_stage12.sh PHOTOS INIT.safetensors OUT_DIR SECONDS [DEVICE]
#   CONFIG=tools/builtin_model/train_gpu_stage13.toml EVAL_INIT=0 bash tools/builtin_model/gpu_stage12.sh ...
#
# PHOTOS is the shared photo folder (all 49; make_eval_set.py holds 6 out). OUT_DIR gets last.safetensors,
# metrics.jsonl, eval_stage.json and eval_init.json. A dry run on a CPU: WORKERS=1 EVAL_LIMIT=4 ... 60 cpu
set -uo pipefail
photos=$1 init=$2 out=$3 seconds=$4 device=${5:-cuda}
work=$(mktemp -d)
py() { PYTHONUNBUFFERED=1 python3 "$@"; }
py tools/builtin_model/make_eval_set.py "$photos" "$work/evalset" --train-dir "$work/train_photos" || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
start=$(date +%s)
timeout -s INT "$seconds" python3 -m pconv_kit_cli train --config "${CONFIG:-tools/builtin_model/train_gpu_stage12.toml}" \
    --images "$work/train_photos" --out "$work/stage12" --init-weights "$init" --device "$device" \
    ${WORKERS:+--workers "$WORKERS"}
echo "train exit code $? after $(( $(date +%s) - start )) s"
for f in last.safetensors last.safetensors.json metrics.jsonl; do cp "$work/stage12/$f" "$out/" || echo "no $f"; done
names=(stage:"$work/stage12/last.safetensors")
[ "${EVAL_INIT:-1}" = 1 ] && names+=(init:"$init")
for name in "${names[@]}"; do
    py -m pconv_kit_cli eval "$work/evalset/images" "$work/evalset/masks" --recursive --baselines none \
        --model "${name#*:}" --device "$device" ${EVAL_LIMIT:+--limit "$EVAL_LIMIT"} --json "$out/eval_${name%%:*}.json" >"$out/eval_${name%%:*}.txt" 2>&1
    tail -3 "$out/eval_${name%%:*}.txt"
done
echo "done after $(( $(date +%s) - start )) s"
