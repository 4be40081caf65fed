#!/usr/bin/env bash
# Download, here, the wheels bench/gpu_check.sh needs on the device machine (Python 3.12, x86-64), which has
# torch 2.11 but an older transformers and none of our audio/scoring packages, and no package registry.
# (num2words imports docopt only for its command line.) They go to .whl/ (ignored by git; the device tool carries it: carry [".whl"]). Versions from the lock.
#
# Usage: bash bench/gpu_wheels.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "${root}"
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
lock=requirements/lock.txt
pin() { grep -i "^$1==" "${lock}" || { echo "gpu_wheels: $1 is not in ${lock}" >&2; exit 1; }; }
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl \
  "$(pin transformers)" "$(pin peft)" "$(pin soundfile)" "$(pin cffi)" "$(pin pycparser)" "$(pin soxr)" \
  "$(pin jiwer)" "$(pin rapidfuzz)" "$(pin num2words)"
ls -la .whl
du -sh .whl
