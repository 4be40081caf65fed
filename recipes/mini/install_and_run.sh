#!/usr/bin/env bash
# The main job on a fresh machine: install everything (into .venv at the repository root, unless a virtual
# environment is active), then run the mini recipe end to end on CPU.
#
# Usage: bash recipes/mini/install_and_run.sh [run.sh options...]
#   e.g. bash recipes/mini/install_and_run.sh --stop-stage 7     (speech recognition only)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "${here}/../.." && pwd)
if [ -z "${VIRTUAL_ENV:-}" ]; then
  bash "${here}/../common/install.sh" --venv "${root}/.venv"
  # shellcheck disable=SC1091
  . "${root}/.venv/bin/activate"
else
  bash "${here}/../common/install.sh"
fi
exec bash "${here}/run.sh" "$@"
