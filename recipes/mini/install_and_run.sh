#!/usr/bin/env bash
# The main job on a fresh machine: install everything, then run the mini recipe end to end on CPU.
#
# Usage: bash recipes/mini/install_and_run.sh [run.sh options...]
#   e.g. bash recipes/mini/install_and_run.sh --stop-stage 7     (speech recognition only)
# Environment: PYTHON (default python3) picks the interpreter to install into.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bash "${here}/../common/install.sh"
bindir=$("${PYTHON:-python3}" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
export PATH="${bindir}:${PATH}"
exec bash "${here}/run.sh" "$@"
