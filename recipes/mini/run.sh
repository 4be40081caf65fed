#!/usr/bin/env bash
# recipes/mini: the whole toolkit end to end on CPU, on synthetic speech (espeak-ng + flite), no download.
#
# Usage:
#   bash recipes/mini/run.sh                          # everything, about 20 min on 2 CPU cores
#   bash recipes/mini/run.sh --stage 6 --stop-stage 7 # only decode + score again
#   bash recipes/mini/run.sh --help                   # all options with their current values
#
# Stages (outputs go to --work-dir, default recipes/mini/, as data/ and exp/; each stage leaves a .done
# marker and a rerun skips it; an interrupted training stage resumes from its last checkpoint):
#   0  synthesize the corpus (train/dev/test in LibriSpeech layout, exact word times, fr translations)
#   1  prepare Kaldi data dirs + JSONL manifests from it (the same code as for LibriSpeech)
#   2  build the tiny LLM: BPE tokenizer + Qwen2-shaped model, pre-trained as an LM on the train
#      transcripts and their French translations
#   3  train the chunked streaming Conformer with CTC (computes the global CMVN stats first)
#   4  forced-align train/dev with the CTC encoder -> exp/<tag>/align/{train,dev}.jsonl (word end times for
#      the streaming targets; the corpus' exact times in data/ stay as the reference for latency scoring)
#   5  train the projector + LoRA + <wait> rows (streaming and batch-mode targets) on the frozen encoder
#   6  decode test: streaming at ${chunk_ms} ms and ${chunk_ms2} ms, and batch mode (same checkpoint)
#   7  score (WER, latency, RTF) and print the results table (also exp/<tag>/results.{md,json})
#  Speech translation track (English speech -> French text, same encoder):
#   8  train the ST adapter (task=st)       9  decode test (streaming + batch)      10  score BLEU/chrF/AL
set -euo pipefail

# ----------------------------------------------------------------------------- options (defaults)
stage=0
stop_stage=10
num_utts=3000           # utterances in train+dev+test (80/10/10)
seed=0
noise_snr=30            # white noise at this SNR (dB), or none. The synthesizers leave exact digital silence
                        # between words (a third of the frames at the log floor after fbank), which squeezes
                        # the speech frames into a tiny range after CMVN and slows CTC training several-fold.
config=conf/mini.yaml   # relative to the repository root
tag=mini                # exp/<tag>
llm_pretrain_steps=600
llm_hidden=256
llm_layers=4
overrides=""            # KEY=VALUE config overrides for every stage, e.g. "encoder.num_layers=2"
ctc_overrides=""        # ... for the ctc (and align) stage only, e.g. "train.epochs=4"
llm_overrides="train.lr=2e-3 train.epochs=5 train.max_frames_per_batch=4000 train.warmup_steps=100 train.silence_share=0.05"
                        # ... for the llm stages only (the config's train section is the CTC stage's)
chunk_ms=640
chunk_ms2=320
threads=2               # torch threads per process
decode_batch=8          # utterances decoded together (speech-llm decode --batch-size)
progress=true
work_dir=               # where data/ and exp/ go (default: the recipe dir)

help_message="Usage: $0 [options]   (the mini recipe; see the stage list at the top of this file)"
_argv=("$@")            # for cmdline.txt (parse_options.sh consumes the arguments)
. "$(dirname "${BASH_SOURCE[0]}")/../common/parse_options.sh"
recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "${recipe_dir}/../.." && pwd)
. "${root}/recipes/common/utils.sh"
[ $# -eq 0 ] || { echo "$0: unexpected argument '$1' (options only; see --help)" >&2; exit 1; }

# --config and --work-dir are relative to where run.sh was started; a config not found there is looked up
# in the repository root (so the default conf/mini.yaml works from anywhere).
if [ -f "${config}" ]; then config=$(abs_path "${config}")
elif [ -f "${root}/${config}" ]; then config=${root}/${config}
else echo "$0: --config ${config}: not found (here or in ${root})" >&2; exit 1; fi
work_dir=$(abs_path "${work_dir:-${recipe_dir}}")
export OMP_NUM_THREADS=${threads} MKL_NUM_THREADS=${threads} HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
read -r -a all_extra <<< "${overrides}"
read -r -a ctc_extra <<< "${ctc_overrides}"
read -r -a llm_extra <<< "${llm_overrides}"
# Check the config with every override now: a typo fails here, not after the corpus is synthesized.
config_value "${config}" llm.task "${all_extra[@]}" "${ctc_extra[@]}" "${llm_extra[@]}" > /dev/null
mkdir -p "${work_dir}" && cd "${work_dir}"

exp=exp/${tag}
corpus=data/corpus
no_progress=""
if [ "${progress}" != true ]; then no_progress="--no-progress"; export TQDM_DISABLE=1; fi  # (tqdm >= 4.66)
paths=(data.train_manifest=data/train/manifest.jsonl data.valid_manifest=data/dev/manifest.jsonl
       data.cmvn_path=data/cmvn.json data.units_path=data/units.txt llm.path_or_name=exp/tiny_llm)
aligned=(data.train_manifest="${exp}/align/train.jsonl" data.valid_manifest="${exp}/align/dev.jsonl")
save_cmdline "${exp}" "${_argv[@]}"
log "recipe ${recipe_dir}; working in $(pwd); experiment ${exp}"

if stage_todo 0 data synth; then
  log "Stage 0: synthesize ${num_utts} utterances into ${corpus}"
  noise=(); [ "${noise_snr}" = none ] || noise=(--noise-snr "${noise_snr}")
  speech-llm prepare synth --out "${corpus}" --num-utts "${num_utts}" --seed "${seed}" "${noise[@]}"
  mark_done data synth
fi

if stage_todo 1 data prepare; then
  log "Stage 1: data dirs + manifests (data/{train,dev,test})"
  speech-llm prepare librispeech --parts train,dev,test --corpus-dir "${corpus}" --out data
  mark_done data prepare
fi
test_set=data/test

if stage_todo 2 exp/tiny_llm build; then
  log "Stage 2: tiny LLM (tokenizer + ${llm_layers}x${llm_hidden} Qwen2, ${llm_pretrain_steps} LM steps)"
  texts=(--text data/train/text)   # the French translations too, for the ST track's tokenizer
  [ -f data/train/text.fr ] && texts+=(--text data/train/text.fr)
  speech-llm build-llm "${texts[@]}" --kaldi-text --out exp/tiny_llm --overwrite --arch qwen2 \
    --vocab-size 1000 --hidden-size "${llm_hidden}" --num-layers "${llm_layers}" --num-heads 4 --num-kv-heads 2 \
    --intermediate-size $((llm_hidden * 4)) --pretrain-steps "${llm_pretrain_steps}"
  mark_done exp/tiny_llm build
fi

if stage_todo 3 "${exp}" ctc; then
  log "Stage 3: CTC encoder -> ${exp}/ctc"
  speech-llm train --config "${config}" --exp-dir "${exp}" --stage ctc ${no_progress} \
    "${paths[@]}" "${all_extra[@]}" "${ctc_extra[@]}"
  mark_done "${exp}" ctc
fi

if stage_todo 4 "${exp}" align; then
  log "Stage 4: forced alignment of train/dev with ${exp}/ctc -> ${exp}/align"
  for set in train dev; do
    speech-llm train --config "${config}" --exp-dir "${exp}" --stage align ${no_progress} \
      --manifest "data/${set}/manifest.jsonl" --out "${exp}/align/${set}.jsonl" \
      "${paths[@]}" "${all_extra[@]}" "${ctc_extra[@]}"
  done
  mark_done "${exp}" align
fi

if stage_todo 5 "${exp}" llm; then
  log "Stage 5: projector + LoRA -> ${exp}/llm"
  speech-llm train --config "${config}" --exp-dir "${exp}" --stage llm ${no_progress} \
    "${paths[@]}" "${aligned[@]}" "${all_extra[@]}" "${llm_extra[@]}"
  mark_done "${exp}" llm
fi

# decode_into MODEL DIR...: decode the test set with MODEL into each DIR not done yet, in the mode DIR's
# name says (decode_mode_opts); leaves DIR/.done.decode.
decode_into() {
  local model=$1 d opts; shift
  for d in "$@"; do
    is_done "${d}" decode && continue
    mapfile -t opts < <(decode_mode_opts "${d}"); [ ${#opts[@]} -gt 0 ] || return 1
    speech-llm decode --exp-dir "${model}" --data "${test_set}" --out "${d}" "${opts[@]}" \
      --batch-size "${decode_batch}" ${no_progress}
    mark_done "${d}" decode
  done
}

# score_and_report PREFIX "SCORE OPTIONS" DIR...: score each DIR against the test set, then one table
# PREFIX.{md,json} whose "rel. to batch" baseline is the last DIR (the batch decode).
score_and_report() {
  local prefix=$1 d extra; read -r -a extra <<< "$2"; shift 2
  for d in "$@"; do speech-llm score --ref "${test_set}" --hyp "${d}" "${extra[@]}" > /dev/null; done
  speech-llm report --out "${prefix}" --baseline "${!#}" "$@"
}

decode_dirs=("${exp}/decode_test_${chunk_ms}ms" "${exp}/decode_test_${chunk_ms2}ms" "${exp}/decode_test_batch")
if run_stage 6; then
  log "Stage 6: decode ${test_set} (streaming ${chunk_ms} ms, ${chunk_ms2} ms, batch)"
  decode_into "${exp}" "${decode_dirs[@]}"
fi

if run_stage 7; then
  log "Stage 7: score"
  score_and_report "${exp}/results" "" "${decode_dirs[@]}"
fi

st_exp=${exp}_st
st_dirs=("${st_exp}/decode_test_${chunk_ms}ms" "${st_exp}/decode_test_batch")
if stage_todo 8 "${st_exp}" llm; then
  log "Stage 8: speech translation adapter (en speech -> fr text) -> ${st_exp}/llm on ${exp}/ctc"
  speech-llm train --config "${config}" --exp-dir "${st_exp}" --stage llm --encoder-checkpoint "${exp}/ctc" \
    ${no_progress} "${paths[@]}" "${aligned[@]}" "${all_extra[@]}" llm.task=st llm.target_lang=fr "${llm_extra[@]}"
  mark_done "${st_exp}" llm
fi

if run_stage 9; then
  log "Stage 9: decode ${test_set} into French (streaming ${chunk_ms} ms, batch)"
  decode_into "${st_exp}" "${st_dirs[@]}"
fi

if run_stage 10; then
  log "Stage 10: score speech translation (BLEU, chrF, AL/LAAL/DAL)"
  score_and_report "${st_exp}/results" "--task st --lang fr" "${st_dirs[@]}"
fi

results=(); run_stage 7 && results+=("${exp}/results.md"); run_stage 10 && results+=("${st_exp}/results.md")
log "Done.${results[*]:+ Results: ${results[*]}}"
