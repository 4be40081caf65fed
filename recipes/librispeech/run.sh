#!/usr/bin/env bash
# recipes/librispeech: LibriSpeech from download to scored results, on GPUs (or on a small corpus, on CPU).
#
# Usage:
#   bash recipes/librispeech/run.sh                                     # train-clean-100, Qwen2.5-0.5B, 1 GPU
#   bash recipes/librispeech/run.sh --ngpu 8 \
#       --train-parts train-clean-100,train-clean-360,train-other-500 --dev-parts dev-clean,dev-other
#   bash recipes/librispeech/run.sh --config conf/librispeech_qwen2.5_1.5b.yaml --ngpu 8 ...
#   bash recipes/librispeech/run.sh --corpus-dir /corpora/LibriSpeech  # an extracted copy: no download
#   bash recipes/librispeech/run.sh --llm /models/Qwen2.5-0.5B-Instruct # a local model dir
#   bash recipes/librispeech/run.sh --stage 6 --stop-stage 7 --chunk-ms 640 --extra-chunk-ms 320,1280
#   bash recipes/librispeech/run.sh --help                              # all options, current values
#
# Stages (outputs under --work-dir, default this recipe's dir: download/, data/, exp/<tag>/; each stage
# leaves a .done marker and a rerun skips it; an interrupted training stage resumes from its checkpoint;
# the same steps have the same numbers as in recipes/mini, see recipes/common/utils.sh):
#   0  download + extract each part (OpenSLR 12, sha256-checked) or read --corpus-dir, then write the data
#      dir data/<part with _> (Kaldi files + manifest.jsonl)
#   1  combine several train (dev) parts into one data dir: data/train_clean_100_clean_360 ...
#   2  the LLM: fetch it into the Hugging Face cache when it is a hub name (a local dir is used as it is)
#   3  train the chunked streaming Conformer with CTC (units and CMVN stats are computed first)
#   4  forced-align train and dev with the CTC model -> exp/<tag>/align/<set>.jsonl (word end times)
#   5  train the projector + LoRA + <wait> rows on the frozen encoder (streaming targets at --chunk-ms)
#   6  decode each test part: streaming at --chunk-ms (and --extra-chunk-ms), and batch (same checkpoint)
#   7  score (WER, latency, RTF) and write the results tables exp/<tag>/results_<test set>.{md,json}
#
# Options that take paths (--work-dir, --download-dir, --corpus-dir, --config, a local --llm) are taken
# relative to the current dir; a --config that is not found there is looked up in the repository root.
# --llm: empty = the config's llm.path_or_name (Qwen/Qwen2.5-0.5B-Instruct in the default config); a hub
# name is downloaded into the Hugging Face cache in stage 2. --ngpu: 0 = CPU, 1 = one GPU, N > 1 =
# `accelerate launch --multi_gpu --num_processes N` for the training stages (decoding runs --decode-jobs
# processes side by side, one per GPU). Per-GPU batch sizes are train.<stage>.max_frames_per_batch in the
# config, which holds every stage's hyperparameters (train.ctc, train.llm).
set -euo pipefail

# ----------------------------------------------------------------------------- options (defaults)
stage=0
stop_stage=7
work_dir=""             # where download/, data/ and exp/ go; empty = this recipe's dir
download_dir=""         # empty = <work-dir>/download
corpus_dir=""           # an extracted LibriSpeech (the dir holding train-clean-100/ ...): no download
train_parts=train-clean-100
dev_parts=dev-clean
test_parts=test-clean,test-other
config=conf/librispeech_qwen2.5_0.5b.yaml
llm=""                  # hub name or local dir; empty = the config's llm.path_or_name
tag=""                  # exp/<tag>; empty = <config name without librispeech_>_<train set>
chunk_ms=640            # streaming chunk (ms): LLM training targets and streaming decoding
extra_chunk_ms=""       # more chunk sizes to decode at, comma-separated, e.g. 320,1280
ngpu=1
decode_jobs=0           # decodes run side by side; 0 = one per GPU (1 on CPU)
decode_opts=""          # more `speech-llm decode` options, e.g. "--max-tokens-per-segment 400"
overrides=""            # KEY=VALUE config overrides for every stage, e.g. "train.llm.epochs=2 encoder.num_layers=8"
progress=true

help_message="Usage: $0 [options]   (LibriSpeech; see the stage list at the top of this file)"
_argv=("$@")            # for cmdline.txt (a name parse_options.sh does not take for an option)
. "$(dirname "${BASH_SOURCE[0]}")/../common/parse_options.sh"
recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "${recipe_dir}/../common/utils.sh"
no_positional "$@"
[[ "${ngpu}" =~ ^[0-9]+$ ]] || die "--ngpu must be a number >= 0, got '${ngpu}'"
[[ "${decode_jobs}" =~ ^[0-9]+$ ]] || die "--decode-jobs must be a number >= 0, got '${decode_jobs}'"
for ms in ${chunk_ms} ${extra_chunk_ms//,/ }; do
  [[ "${ms}" =~ ^[1-9][0-9]*$ ]] || die "--chunk-ms / --extra-chunk-ms: '${ms}' is not a positive number of ms"
done

# Paths given by the user are relative to where the recipe was started, not to the work dir.
[ -n "${work_dir}" ] || work_dir=${recipe_dir}
work_dir=$(abs_path "${work_dir}")
[ -n "${download_dir}" ] || download_dir=${work_dir}/download
download_dir=$(abs_path "${download_dir}")
if [ -n "${corpus_dir}" ]; then
  [ -d "${corpus_dir}" ] || die "--corpus-dir ${corpus_dir}: no such directory"
  corpus_dir=$(abs_path "${corpus_dir}")
fi
config=$(find_config "${config}")
[ -n "${llm}" ] || llm=$(config_value "${config}" llm.path_or_name)
if [ -e "${llm}" ]; then llm=$(abs_path "${llm}")
elif [[ "${llm}" == /* || "${llm}" == .* ]]; then die "--llm ${llm}: no such model dir"; fi

IFS=, read -r -a train_list <<< "${train_parts}"
IFS=, read -r -a dev_list <<< "${dev_parts}"
IFS=, read -r -a test_list <<< "${test_parts}"
[ ${#train_list[@]} -gt 0 ] && [ ${#dev_list[@]} -gt 0 ] && [ ${#test_list[@]} -gt 0 ] \
  || die "--train-parts, --dev-parts and --test-parts must each name at least one part"

# set_name PREFIX PART...: the data dir of one part (dev-clean -> dev_clean) or of several combined
# (train-clean-100,train-clean-360 -> train_clean_100_clean_360).
set_name() {
  local prefix=$1 name="" s; shift
  for p in "$@"; do
    s=${p//-/_}
    if [ -z "${name}" ]; then name=${s}; else name+="_${s#"${prefix}"_}"; fi
  done
  echo "${name}"
}
train_set=$(set_name train "${train_list[@]}")
dev_set=$(set_name dev "${dev_list[@]}")
test_sets=(); for p in "${test_list[@]}"; do test_sets+=("${p//-/_}"); done
all_parts=$(printf '%s\n' "${train_list[@]}" "${dev_list[@]}" "${test_list[@]}" | awk '!seen[$0]++')

if [ -z "${tag}" ]; then
  tag=$(basename "${config}" .yaml); tag=${tag#librispeech_}_${train_set}
fi

mkdir -p "${work_dir}"
cd "${work_dir}"
export TOKENIZERS_PARALLELISM=false
exp=exp/${tag}
no_progress=""; [ "${progress}" = true ] || no_progress="--no-progress"
if [ "${ngpu}" -eq 0 ]; then
  train_cmd=(speech-llm train --cpu); align_cmd=(speech-llm train --cpu); device=cpu
elif [ "${ngpu}" -eq 1 ]; then
  train_cmd=(speech-llm train); align_cmd=(speech-llm train); device=cuda
else
  # mixed precision is the trainer's (train.precision); the launcher's own flag only silences its warning
  train_cmd=(accelerate launch --multi_gpu --num_processes "${ngpu}" --num_machines 1 --mixed_precision no
             --dynamo_backend no -m speech_llm train)
  align_cmd=(speech-llm train); device=cuda
fi
[ "${decode_jobs}" -gt 0 ] || decode_jobs=$(( ngpu > 0 ? ngpu : 1 ))
if [ "${ngpu}" -gt 0 ] && [ "${stage}" -le 6 ] && [ "${stop_stage}" -ge 3 ]; then
  seen=$("${PYTHON}" -c 'import torch; print(torch.cuda.device_count())')
  [ "${seen}" -ge "${ngpu}" ] || die "--ngpu ${ngpu}, but torch sees ${seen} GPU(s); use --ngpu 0 to run on CPU"
fi

common=(data.cmvn_path="${exp}/cmvn.json" llm.path_or_name="${llm}" streaming.chunk_ms="${chunk_ms}"
        decode.chunk_ms="${chunk_ms}")
read -r -a extra <<< "${overrides}"
# Check the config with every override now (a typo fails here, not after hours), and name the units file.
units=$(config_value "${config}" ctc.units "${common[@]}" "${extra[@]}")
common+=(data.units_path="${exp}/units.$([ "${units}" = bpe ] && echo json || echo txt)")
save_cmdline "${exp}" "${_argv[@]}"
log "work dir ${work_dir}; experiment ${exp}; config ${config}; LLM ${llm}"
log "train ${train_set}, dev ${dev_set}, test ${test_sets[*]}; ngpu ${ngpu}"

if run_stage 0; then
  log "Stage 0: data dirs for ${all_parts//$'\n'/ } ($([ -n "${corpus_dir}" ] && echo "from ${corpus_dir}" \
      || echo "download into ${download_dir}"))"
  todo=(); for part in ${all_parts}; do is_done data "prepare_${part//-/_}" || todo+=("${part}"); done
  [ ${#todo[@]} -gt 0 ] || log "Stage 0: every part prepared before, skipped (rm data/.done.prepare_<set> to redo)"
  if [ ${#todo[@]} -gt 0 ]; then
    if [ -n "${corpus_dir}" ]; then src=(--corpus-dir "${corpus_dir}"); else src=(--download-dir "${download_dir}"); fi
    speech-llm prepare librispeech --parts "$(IFS=,; echo "${todo[*]}")" "${src[@]}" --out data
    for part in "${todo[@]}"; do mark_done data "prepare_${part//-/_}"; done
  fi
fi

if run_stage 1; then
  log "Stage 1: train set data/${train_set}, dev set data/${dev_set}"
  for spec in "${train_set}:${train_list[*]}" "${dev_set}:${dev_list[*]}"; do
    name=${spec%%:*}; read -r -a parts <<< "${spec#*:}"
    [ ${#parts[@]} -gt 1 ] || continue                  # one part: its own data dir
    is_done data "combine_${name}" && continue
    dirs=(); for p in "${parts[@]}"; do dirs+=("data/${p//-/_}"); done
    combine_data "data/${name}" "${dirs[@]}"
    mark_done data "combine_${name}"
  done
fi

if run_stage 2; then
  if [ -e "${llm}" ]; then
    log "Stage 2: the LLM is the local model dir ${llm}"
  elif stage_todo 2 data "llm_${llm//\//_}"; then
    log "Stage 2: fetch the LLM ${llm} into the Hugging Face cache"
    fetch_hf_model "${llm}"
    mark_done data "llm_${llm//\//_}"
  fi
fi

ctc_and_align_stages "${train_set}" "${dev_set}" "${common[@]}" "${extra[@]}"

if stage_todo 5 "${exp}" llm; then
  log "Stage 5: projector + LoRA (${llm}) -> ${exp}/llm"
  "${train_cmd[@]}" --config "${config}" --exp-dir "${exp}" --stage llm ${no_progress} "${common[@]}" \
    data.train_manifest="${exp}/align/${train_set}.jsonl" data.valid_manifest="${exp}/align/${dev_set}.jsonl" \
    "${extra[@]}"
  mark_done "${exp}" llm
fi

# decode_dirs SET: the decode dirs of one test set, streaming first, batch last (the report's baseline).
decode_dirs() {
  local ms
  for ms in ${chunk_ms} ${extra_chunk_ms//,/ }; do echo "${exp}/decode_$1_${ms}ms"; done
  echo "${exp}/decode_$1_batch"
}

# decode DIR: decode the test set DIR's name says (exp/<tag>/decode_<set>_<mode>), on ${device}.
decode() {
  local name=${1##*/decode_}
  read -r -a more <<< "${decode_opts}"
  decode_dir "${exp}" "data/${name%_*}" "$1" --device "${device}" "${more[@]}" ${no_progress}
}

if run_stage 6; then
  log "Stage 6: decode ${test_sets[*]} (streaming ${chunk_ms}${extra_chunk_ms:+,${extra_chunk_ms}} ms, batch)" \
      "with ${decode_jobs} job(s)"
  todo=()
  for set in "${test_sets[@]}"; do
    for d in $(decode_dirs "${set}"); do is_done "${d}" decode || todo+=("${d}"); done
  done
  [ ${#todo[@]} -gt 0 ] || log "Stage 6: every decode done before, skipped (rm <decode dir>/.done.decode to redo)"
  if [ "${ngpu}" -gt 0 ]; then   # one GPU per decode job
    IFS=, read -r -a gpus <<< "${CUDA_VISIBLE_DEVICES:-$(seq -s, 0 $((ngpu - 1)))}"
    export GPUS="${gpus[*]:0:ngpu}"
  fi
  [ ${#todo[@]} -eq 0 ] || run_pool "${decode_jobs}" decode "${todo[@]}"
fi

if run_stage 7; then
  log "Stage 7: score and report"
  for set in "${test_sets[@]}"; do
    mapfile -t dirs < <(decode_dirs "${set}")
    score_report "${exp}/results_${set}" "data/${set}" "" "${dirs[@]}"
  done
fi

log "Done. Results: $(for s in "${test_sets[@]}"; do printf '%s ' "${work_dir}/${exp}/results_${s}.md"; done)"
