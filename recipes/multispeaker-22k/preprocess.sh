#!/usr/bin/env bash
# The feature caches of the multi-speaker 22.05 kHz recipe (pyin F0 labels included), with the held-out
# voices (VCTK p227, ARCTIC slt, aew, axb) left out.   bash recipes/multispeaker-22k/preprocess.sh [DATA_DIR]
set -euo pipefail
data=${1:-../shared/data}
wavesynth preprocess --corpus ljspeech --root "$data/ljspeech-mini" --out cache/ljspeech-mini-22k
wavesynth preprocess --corpus ljspeech --root "$data/selfrec-22k" --out cache/selfrec-22k
wavesynth preprocess --corpus folder --root "$data/allison-16k" --out cache/allison-22k
wavesynth preprocess --corpus arctic --root "$data/arctic-mini" --out cache/arctic-train-22k \
    --exclude-speakers slt,aew,axb
wavesynth preprocess --corpus vctk --root "$data/vctk-mini" --out cache/vctk-train-22k --speakers p228
