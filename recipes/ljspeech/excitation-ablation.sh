#!/usr/bin/env bash
# Issue #15's ablation: the shipped student's size, data and losses (recipes/ljspeech/student.toml with
# kl_weight = 0, so the teacher only scores validation) from scratch for 8000 steps, without the excitation,
# with the sine excitation in every layer, and with it only at each flow's input (model.excitation_at =
# "flow_input"), one run per core; then the held-out scores at steps 1k, 2k, 4k and 8k, the sine models
# driven by tracker F0 and by the pitch predictor's F0 (runs/ljspeech-pitch/best.pt).
#   bash recipes/ljspeech/excitation-ablation.sh          (about 45 minutes per pair of arms on 2 cores; resumes)
set -euo pipefail
teacher=${TEACHER:-training-state/ljspeech-teacher/step-00002400.pt}
common=(--teacher "$teacher" --resume loss.kl_weight=0 train.steps=8000 train.val_every=1000 train.save_every=1000
        train.keep_last=8 train.progress=false)
student() {  # run name, then settings
    local name=$1; shift
    OMP_NUM_THREADS=1 wavesynth train student --config recipes/ljspeech/student.toml "${common[@]}" \
        train.run_dir=runs/ablation-$name "$@"
}
student none model.excitation=none &
student sine model.excitation=sine &
wait
student sine-flow-input model.excitation=sine model.excitation_at=flow_input
OMP_NUM_THREADS=2 python benchmarks/excitation_ablation.py \
    --runs runs/ablation-none runs/ablation-sine runs/ablation-sine-flow-input \
    --pitch runs/ljspeech-pitch/best.pt --out runs/ablation-report
