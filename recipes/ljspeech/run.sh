#!/usr/bin/env bash
# The 22.05 kHz recipe end to end: features, teacher, student, a model folder and its evaluation.
#   bash recipes/ljspeech/run.sh [DATA_DIR]      (DATA_DIR defaults to ../shared/data)
# Every stage resumes: rerun the script after an interruption. Pass extra settings through the
# environment, e.g. TEACHER_ARGS="train.steps=500" STUDENT_ARGS="train.steps=500".
set -euo pipefail
data=${1:-../shared/data}

wavesynth preprocess --corpus ljspeech --root "$data/ljspeech-mini" --out cache/ljspeech-mini-22k --preset hifigan-22k
wavesynth preprocess --corpus ljspeech --root "$data/selfrec-22k" --out cache/selfrec-22k --preset hifigan-22k

wavesynth train teacher --config recipes/ljspeech/teacher.toml --resume ${TEACHER_ARGS:-}
wavesynth train student --config recipes/ljspeech/student.toml --teacher runs/ljspeech-teacher/best.pt \
    --resume ${STUDENT_ARGS:-}

wavesynth export --checkpoint runs/ljspeech-student/best.pt --out runs/ljspeech-22k-student
wavesynth evaluate --model runs/ljspeech-22k-student --data cache/ljspeech-mini-22k cache/selfrec-22k \
    --out runs/eval-ljspeech-22k
