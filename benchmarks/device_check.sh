#!/usr/bin/env bash
# Everything that needs a GPU, as one prepared run for a session that is lent one (15 minutes in all).
#
#   bash benchmarks/device_check.sh checks   the CUDA tests (tests/test_cuda.py) and the rest of the suite on
#                                            that machine's torch (less the PESQ tests: pesq has no wheel
#                                            to carry); synthesis speed on the GPU
#                                            (bench_student.py --device cuda)                 about 3 min
#   bash benchmarks/device_check.sh train    a training burst on ljspeech-mini: a fresh teacher at batch 16
#                                            for TEACHER_SECONDS, then its student for STUDENT_SECONDS; each
#                                            is stopped by SIGINT, which saves a resumable checkpoint
#   bash benchmarks/device_check.sh all      both                                             about 9 min
#
# Prepare here first: bash benchmarks/device_prepare.sh (wheels into .whl/, the corpus into .device-data/),
# then carry [".whl", ".device-data"]. Results go to $OUT (at most 8 files come back): log.txt, bench.txt,
# and per model its last checkpoint and metrics.csv. Continue those runs on the CPU with --resume, or
# evaluate them with `wavesynth evaluate --model <checkpoint>` (PESQ is not installed on the GPU image).
# DEVICE=cpu with small *_SECONDS dry-runs the script on a CPU machine.
set -uo pipefail
cd "$(dirname "$0")/.."
STAGE=${1:-all}
OUT=${OUT:-runs/device-check}
DEVICE=${DEVICE:-cuda}
TEACHER_SECONDS=${TEACHER_SECONDS:-240}
STUDENT_SECONDS=${STUDENT_SECONDS:-150}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1

if [ -d .whl ] && ! "$PYTHON" -c "import librosa, soundfile" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
WAVESYNTH=("$PYTHON" -c 'import sys; from wavesynth.cli import main; sys.exit(main())')
stamp() { echo "== $(date -u +%H:%M:%S) $*"; }

checks() {
    stamp "device"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
    "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
    stamp "CUDA tests"
    timeout 300 "$PYTHON" -m pytest tests/test_cuda.py -rs -p no:cacheprovider
    stamp "the rest of the suite"
    timeout 240 "$PYTHON" -m pytest -rf -p no:cacheprovider --ignore tests/test_cuda.py \
        --ignore tests/test_eval_metrics.py --deselect tests/test_cli_vocoder.py::test_evaluate_writes_a_report
    stamp "synthesis speed"
    timeout 180 "$PYTHON" benchmarks/bench_student.py --device "$DEVICE" --seconds 10 --teacher-frames 32 \
        | tee "$OUT/bench.txt"
}

# Stop a training command after $1 seconds with SIGINT (it saves a checkpoint), then copy out its results.
burst() {
    local seconds=$1 name=$2 run=$3
    shift 3
    timeout --foreground -s INT -k 120 "$seconds" "$@"
    local last
    last=$(ls "$run"/step-*.pt 2>/dev/null | sort | tail -1)
    [ -n "$last" ] && cp "$last" "$OUT/$name-$(basename "$last")"
    cp "$run/metrics.csv" "$OUT/$name-metrics.csv" 2>/dev/null
    grep -h "val/" "$run/metrics.csv" 2>/dev/null | tail -8
}

train() {
    stamp "preprocess ljspeech-mini"
    "${WAVESYNTH[@]}" preprocess --corpus ljspeech --root .device-data/lj --out cache/device-lj --quiet || return 1
    local common=("data.caches=[\"cache/device-lj\"]" "train.device=$DEVICE" "train.progress=false"
                  "train.num_workers=4" "train.val_every=1000" "train.save_every=500" "train.log_every=100")
    stamp "teacher for ${TEACHER_SECONDS}s"
    rm -rf runs/device-teacher
    burst "$TEACHER_SECONDS" teacher runs/device-teacher "${WAVESYNTH[@]}" train teacher \
        --config recipes/ljspeech/teacher.toml "${common[@]}" train.run_dir=runs/device-teacher \
        train.batch_size=16 train.steps=20000 train.schedule=constant train.lr=5e-4
    local teacher
    teacher=$(ls runs/device-teacher/step-*.pt 2>/dev/null | sort | tail -1)
    [ -n "$teacher" ] || { echo "no teacher checkpoint"; return 1; }
    stamp "student of $teacher for ${STUDENT_SECONDS}s"
    rm -rf runs/device-student
    burst "$STUDENT_SECONDS" student runs/device-student "${WAVESYNTH[@]}" train student \
        --config recipes/ljspeech/student.toml --teacher "$teacher" "${common[@]}" \
        train.run_dir=runs/device-student train.batch_size=16 train.steps=20000 train.schedule=constant \
        train.lr=5e-4
}

case "$STAGE" in
    checks) checks ;;
    train) train ;;
    all) checks; train ;;
    *) echo "usage: $0 checks|train|all" >&2; exit 2 ;;
esac
stamp "done"
