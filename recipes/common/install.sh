#!/usr/bin/env bash
# Install what the toolkit needs on a Debian/Ubuntu machine: system packages (apt-get; through sudo when
# not root) and the Python package itself (editable, with torch/torchaudio 2.11 pinned in setup.cfg).
#
# Usage: bash recipes/common/install.sh [--dev]      (--dev adds the test and lint tools)
# Environment: PYTHON (default python3). Use a virtual environment if the system Python is managed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
python=${PYTHON:-python3}
extra=""; [ "${1:-}" = "--dev" ] && extra="[dev]"

packages=(espeak-ng flite libsndfile1 libportaudio2 alsa-utils)
if command -v apt-get >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  ${sudo} apt-get update -qq
  ${sudo} apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
else
  echo "install.sh: no apt-get here; install these system packages yourself: ${packages[*]}" >&2
fi
"${python}" -m pip install -q --upgrade pip
"${python}" -m pip install -q -e "${root}${extra}"
echo "install.sh: installed speech-llm $("${python}" -c 'import speech_llm; print(speech_llm.__version__)')"
