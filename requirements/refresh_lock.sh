#!/usr/bin/env bash
# Refresh requirements/lock.txt: resolve the newest versions setup.cfg allows into a brand-new virtual
# environment, run the fast tests there, and write the lock only if they pass.
#
# Usage: bash requirements/refresh_lock.sh [--keep-venv DIR]
# Environment: PYTHON (default python3) is the interpreter the venv is made from.
#
# The lock is the complete resolved set (pip freeze), used as a constraints file by
# recipes/common/install.sh, .ci/run and the README's main-job command, so every user installs exactly
# the set the tests passed on. Commit the new lock together with whatever change needed it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
venv=$(mktemp -d /tmp/speech-llm-lock.XXXXXX)
keep=""
[ "${1:-}" = "--keep-venv" ] && keep=${2:?--keep-venv needs a dir} && venv=${keep}
cleanup() { [ -n "${keep}" ] || rm -rf "${venv}"; }
trap cleanup EXIT

echo "refresh_lock: fresh venv in ${venv}"
"${python}" -m venv "${venv}"
"${venv}/bin/python" -m pip install -q --upgrade pip
# No constraints: the newest releases the ranges in setup.cfg allow.
"${venv}/bin/python" -m pip install -q -e "${root}[tts,pretrained,dev]"
"${venv}/bin/python" -m pip install -q --no-deps -r "${root}/requirements/no-deps.txt"
"${venv}/bin/speech-llm" doctor
echo "refresh_lock: running the fast tests"
(cd "${root}" && HF_HUB_OFFLINE=1 "${venv}/bin/python" -m pytest -q -m "not integration" -p no:cacheprovider)
{
  echo "# Tested lock: the complete resolved set the fast tests passed on (bash requirements/refresh_lock.sh)."
  echo "# Python $("${venv}/bin/python" -c 'import platform; print(platform.python_version())'), $(uname -m), $(date -u +%Y-%m-%d)."
  "${venv}/bin/python" -m pip freeze --exclude-editable | grep -v -i '^speech-llm'
} > "${root}/requirements/lock.txt.new"
mv "${root}/requirements/lock.txt.new" "${root}/requirements/lock.txt"
echo "refresh_lock: wrote requirements/lock.txt ($(grep -vc '^#' "${root}/requirements/lock.txt") packages)"
