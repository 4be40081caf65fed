#!/usr/bin/env bash
# Shared recipe helpers: logging, stage guards, .done markers, saving the command line.
# Source it from a recipe: . "$(dirname "$0")/../common/utils.sh"

# The Python that has speech_llm installed (the one the speech-llm script runs), for inline helpers.
PYTHON=${PYTHON:-$(command -v python3 || command -v python)}

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]:-main}) $*"
}

# run_stage N: true when stage N is inside [stage, stop_stage].
run_stage() {
  [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]
}

# A stage that finished leaves DIR/.done.NAME; a rerun skips it. Remove the marker to redo it.
is_done() { [ -f "$1/.done.$2" ]; }
mark_done() { mkdir -p "$1"; date '+%Y-%m-%d %H:%M:%S' > "$1/.done.$2"; }

# save_cmdline DIR ARGS...: append the command line (with a timestamp) to DIR/cmdline.txt
save_cmdline() {
  local dir=$1; shift
  mkdir -p "$dir"
  printf '%s %s' "$(date '+%Y-%m-%d %H:%M:%S')" "$0" >> "$dir/cmdline.txt"
  printf ' %q' "$@" >> "$dir/cmdline.txt"
  echo >> "$dir/cmdline.txt"
}

# stage_todo N DIR NAME: true when stage N is selected and DIR/.done.NAME is absent; when the stage is
# selected but done, says so (a rerun skips finished stages; remove the marker to redo one).
stage_todo() {
  run_stage "$1" || return 1
  if is_done "$2" "$3"; then
    echo "$(date '+%Y-%m-%d %H:%M:%S') Stage $1 ($3): done before, skipped (rm $2/.done.$3 to redo)"
    return 1
  fi
}

# abs_path PATH: PATH made absolute against the current dir (no symlinks resolved; PATH need not exist).
abs_path() {
  case "$1" in
    /*) echo "$1" ;;
    *) echo "${PWD}/$1" ;;
  esac
}

# config_value CONFIG KEY [KEY=VALUE...]: print one value of the resolved config (CONFIG plus overrides),
# checked as strictly as `speech-llm train` does; e.g. `config_value conf/x.yaml ctc.units` -> bpe.
config_value() {
  local config=$1 key=$2; shift 2
  "${PYTHON}" - "${config}" "${key}" "$@" <<'PY'
import sys

from speech_llm.config import load_config
from speech_common.errors import UserError

config, key, overrides = sys.argv[1], sys.argv[2], sys.argv[3:]
try:
    value = load_config(config, overrides)
    for part in key.split("."):
        if not hasattr(value, part):
            raise UserError(f"config_value: {config} has no key '{key}'")
        value = getattr(value, part)
except UserError as e:
    sys.exit(f"error: {e}")
print(value)
PY
}

# combine_data OUT IN...: one data dir (Kaldi files + manifest.jsonl) with the utterances of the data
# dirs IN... (e.g. train_clean_100 + train_clean_360). Read and written by data_prep, so every record is
# checked; a key found in two inputs is an error. OUT is replaced.
combine_data() {
  local out=$1; shift
  "${PYTHON}" - "${out}" "$@" <<'PY'
import sys
from pathlib import Path

from data_prep.manifest import manifest_to_data_dir, read_manifest, write_manifest
from speech_common.errors import UserError

out, inputs = Path(sys.argv[1]), sys.argv[2:]
try:
    records = [r for d in inputs for r in read_manifest(Path(d) / "manifest.jsonl")]
    write_manifest(out / "manifest.jsonl", records)
    manifest_to_data_dir(records, out)
except UserError as e:
    sys.exit(f"error: combine_data {out}: {e}")
print(f"combine_data: {len(records)} utterances from {' '.join(inputs)} -> {out}")
PY
}

# fetch_hf_model NAME: download a hub model (config, tokenizer, weights) into the Hugging Face cache now,
# so that a missing or misspelt name fails here, not after hours of training, and several training
# processes do not download it at once. Honours HF_HOME / HF_HUB_OFFLINE / HF_ENDPOINT.
fetch_hf_model() {
  "${PYTHON}" - "$1" <<'PY'
import sys

from huggingface_hub import snapshot_download

name = sys.argv[1]
try:
    path = snapshot_download(name, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken"])
except Exception as e:  # noqa: BLE001 - any failure is reported with the model name
    sys.exit(f"error: cannot fetch the LLM '{name}' from the Hugging Face hub ({type(e).__name__}: {e}); "
             "give a local model dir with --llm, or check the name and the network")
print(f"fetch_hf_model: {name} -> {path}")
PY
}

# decode_mode_opts DIR: the `speech-llm decode` mode options a decode dir's name stands for
# (..._batch -> --mode batch; ..._<N>ms -> --mode streaming --chunk-ms N), one per line.
decode_mode_opts() {
  case "$1" in
    *_batch) printf '%s\n' --mode batch ;;
    *_[0-9]*ms) local ms=${1##*_}; printf '%s\n' --mode streaming --chunk-ms "${ms%ms}" ;;
    *) echo "decode_mode_opts: '$1' names no mode (want ..._batch or ..._<N>ms)" >&2; return 1 ;;
  esac
}
