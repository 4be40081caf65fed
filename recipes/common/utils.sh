#!/usr/bin/env bash
# Shared recipe helpers: logging, stage guards, .done markers, the command line, config lookup, and one
# decode-and-score path (with a job pool) for every recipe.
# Source it from a recipe after parse_options.sh: . "$(dirname "${BASH_SOURCE[0]}")/../common/utils.sh"
#
# Stage numbers are the same in every recipe for the same step:
#   0-1 corpus and data dirs   2 the LLM (built or fetched)   3 CTC encoder   4 alignment
#   5 LLM adapter              6 decode                       7 score + report      (8- recipe extras)

# The Python that has speech_llm installed (the one the speech-llm script runs), for inline helpers.
PYTHON=${PYTHON:-$(command -v python3 || command -v python)}
# The repository root (recipes/common/..).
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

die() { echo "$0: $*" >&2; exit 1; }

# no_positional ARGS...: recipes take options only; anything left after parse_options.sh is an error.
no_positional() { [ $# -eq 0 ] || die "unexpected argument '$1' (options only; see --help)"; }

# find_config PATH: the config as an absolute path; PATH is relative to the current dir, and a config not
# found there is looked up in the repository root (so conf/<name>.yaml works from anywhere).
find_config() {
  if [ -f "$1" ]; then abs_path "$1"
  elif [ -f "${root}/$1" ]; then echo "${root}/$1"
  else die "--config $1: not found (here or in ${root})"; fi
}

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]:-main}) $*"
}

# recipe_setup: the common start of a recipe, after its options are parsed (uses config, work_dir,
# recipe_dir, threads, overrides, progress): --config found (here or in the repository root) and --work-dir
# made absolute (both relative to where run.sh was started), the thread and offline environment, the
# overrides split into all_extra and checked against the config now (a typo fails here, not after the corpus
# is made), no_progress set from --progress, and the work dir entered.
recipe_setup() {
  config=$(find_config "${config}")
  work_dir=$(abs_path "${work_dir:-${recipe_dir}}")
  export OMP_NUM_THREADS=${threads} MKL_NUM_THREADS=${threads} HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
  read -r -a all_extra <<< "${overrides}"
  config_value "${config}" llm.task "${all_extra[@]}" > /dev/null
  no_progress=""
  if [ "${progress}" != true ]; then no_progress="--no-progress"; export TQDM_DISABLE=1; fi  # (tqdm >= 4.66)
  mkdir -p "${work_dir}" && cd "${work_dir}"
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
combine_data() { local out=$1; shift; _write_data_dir "${out}" 0 "$@"; }

# subset_data OUT IN N: a data dir (Kaldi files + manifest.jsonl) with the first N utterances of IN (all
# of them when N is 0 or more than IN has), e.g. a small test subset for a smoke run. OUT is replaced.
subset_data() { _write_data_dir "$1" "$3" "$2"; }

# _write_data_dir OUT N IN...: OUT from the manifests of IN..., the first N records (0: all).
_write_data_dir() {
  "${PYTHON}" - "$@" <<'PY'
import sys
from pathlib import Path

from data_prep.manifest import manifest_to_data_dir, read_manifest, write_manifest
from speech_common.errors import UserError

out, n, inputs = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
try:
    records = [r for d in inputs for r in read_manifest(Path(d) / "manifest.jsonl")]
    records = records[:n] if n > 0 else records
    write_manifest(out / "manifest.jsonl", records)
    manifest_to_data_dir(records, out)
except UserError as e:
    sys.exit(f"error: {out}: {e}")
print(f"{out}: {len(records)} utterances from {' '.join(inputs)}")
PY
}

# ctc_and_align_stages TRAIN DEV [TRAIN OPTIONS...]: stages 3 and 4 of every recipe. 3: the CTC encoder on
# data/TRAIN (validated on data/DEV) -> ${exp}/ctc; 4: forced alignment of both with it ->
# ${exp}/align/{TRAIN,DEV}.jsonl (word end times for the streaming targets). Uses the recipe's ${config},
# ${exp} and ${no_progress}; the options go to every call (config overrides). The commands are the arrays
# train_cmd and align_cmd when the recipe sets them (e.g. accelerate launch), else `speech-llm train`.
ctc_and_align_stages() {
  local train=$1 dev=$2 set; shift 2
  declare -p train_cmd > /dev/null 2>&1 || train_cmd=(speech-llm train)
  declare -p align_cmd > /dev/null 2>&1 || align_cmd=(speech-llm train)
  local paths=(data.train_manifest="data/${train}/manifest.jsonl" data.valid_manifest="data/${dev}/manifest.jsonl")
  if stage_todo 3 "${exp}" ctc; then
    log "Stage 3: CTC encoder -> ${exp}/ctc"
    "${train_cmd[@]}" --config "${config}" --exp-dir "${exp}" --stage ctc ${no_progress} "${paths[@]}" "$@"
    mark_done "${exp}" ctc
  fi
  if stage_todo 4 "${exp}" align; then
    log "Stage 4: forced alignment of ${train} and ${dev} with ${exp}/ctc -> ${exp}/align"
    for set in "${train}" "${dev}"; do
      "${align_cmd[@]}" --config "${config}" --exp-dir "${exp}" --stage align ${no_progress} \
        --manifest "data/${set}/manifest.jsonl" --out "${exp}/align/${set}.jsonl" "${paths[@]}" "$@"
    done
    mark_done "${exp}" align
  fi
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

# decode_dir MODEL DATA DIR [decode options...]: decode data dir DATA with MODEL into DIR, in the mode DIR's
# name says (decode_mode_opts), unless DIR/.done.decode exists; a new decode removes DIR/.done.score.
decode_dir() {
  local model=$1 data=$2 d=$3 opts; shift 3
  is_done "${d}" decode && return 0
  mapfile -t opts < <(decode_mode_opts "${d}"); [ ${#opts[@]} -gt 0 ] || return 1
  rm -f "${d}/.done.score"
  speech-llm decode --exp-dir "${model}" --data "${data}" --out "${d}" "${opts[@]}" "$@"
  mark_done "${d}" decode
}

# run_pool JOBS FUNC ITEM...: run `FUNC ITEM` for every ITEM, JOBS at a time. With JOBS 1 they run in order
# with their output shown; with JOBS > 1 each one's output goes to ITEM/FUNC.log, and when GPUS holds device
# ids (e.g. GPUS="0 1") job i of a round runs with CUDA_VISIBLE_DEVICES=GPUS[i mod n]. Fails (after the
# round) when a job failed, showing the end of its log.
run_pool() {
  local jobs=$1 func=$2 i j failed=0 item pids gpus; shift 2
  local items=("$@")
  read -r -a gpus <<< "${GPUS:-}"
  if [ "${jobs}" -le 1 ]; then
    for item in "${items[@]}"; do "${func}" "${item}"; done
    return
  fi
  for ((i = 0; i < ${#items[@]}; i += jobs)); do
    pids=()
    for ((j = i; j < i + jobs && j < ${#items[@]}; j++)); do
      item=${items[j]}; mkdir -p "${item}"
      log "${func} ${item} (log: ${item}/${func}.log)"
      if [ ${#gpus[@]} -gt 0 ]; then
        (export CUDA_VISIBLE_DEVICES=${gpus[(j - i) % ${#gpus[@]}]}; "${func}" "${item}") > "${item}/${func}.log" 2>&1 &
      else
        "${func}" "${item}" > "${item}/${func}.log" 2>&1 &
      fi
      pids+=("$!:${item}")
    done
    for item in "${pids[@]}"; do
      wait "${item%%:*}" || { failed=1; echo "$0: ${func} ${item#*:} failed; the end of its log:" >&2
                              tail -n 20 "${item#*:}/${func}.log" >&2; }
    done
  done
  [ "${failed}" -eq 0 ]
}

# score_report PREFIX DATA "SCORE OPTIONS" DIR...: score each decode DIR against data dir DATA unless
# DIR/.done.score exists (decode_dir removes it when it decodes again), then write the results table
# PREFIX.{md,json} whose "rel. to batch" baseline is the last DIR (the batch decode) unless it is up to date
# (no DIR was scored again); print it.
score_report() {
  local prefix=$1 data=$2 d extra; read -r -a extra <<< "$3"; shift 3
  for d in "$@"; do
    is_done "${d}" score && continue
    speech-llm score --ref "${data}" --hyp "${d}" "${extra[@]}" > /dev/null
    mark_done "${d}" score
    rm -f "${prefix}.md"
  done
  if [ -f "${prefix}.md" ]; then
    log "${prefix}.md is up to date:"; cat "${prefix}.md"
  else
    speech-llm report --out "${prefix}" --baseline "${!#}" "$@"
  fi
}
