#!/usr/bin/env bash
# Prepare, on the CPU machine, what benchmarks/device_check.sh needs on a GPU machine that has no internet
# and no ../shared (everything travels inside the working tree, 64 MiB in all with the tracked files):
#   .whl/              the audio packages the GPU image lacks (librosa and its own needs, soundfile, soxr,
#                      pystoi), as CPython 3.12 manylinux wheels, pinned to the versions verified here;
#   .device-data/lj/   ljspeech-mini as 16-bit FLAC (5.6 MiB; selfrec-22k would not fit beside the tree).
# Both folders are git-ignored. Then, with the device tool:
#   run(command="bash benchmarks/device_check.sh all", carry=[".whl", ".device-data"], timeout_s=600)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared/data}
PYTHON=${PYTHON:-.venv/bin/python}

rm -rf .whl && mkdir .whl
for package in librosa==0.11.0 lazy_loader==0.6 soundfile==0.14.0 soxr==1.1.0 audioread==3.1.0 pooch==1.9.0 \
               platformdirs==4.14.8 decorator==5.3.1 cffi==2.1.1 pycparser==3.12 pystoi==0.4.1; do
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform any -d .whl "$package"
done

rm -rf .device-data && mkdir -p .device-data/lj/wavs
cp "$SHARED/ljspeech-mini/metadata.csv" .device-data/lj/
"$PYTHON" - "$SHARED/ljspeech-mini/wavs" .device-data/lj/wavs <<'EOF'
import sys
from pathlib import Path

import soundfile as sf

source, target = map(Path, sys.argv[1:])
for wav in sorted(source.glob("*.wav")):
    audio, rate = sf.read(wav, dtype="int16")
    sf.write(target / f"{wav.stem}.flac", audio, rate, subtype="PCM_16")
EOF
du -sh .whl .device-data
