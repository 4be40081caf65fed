#!/usr/bin/env bash
# recipes/mini: the whole toolkit end to end on CPU, on synthetic speech (espeak-ng + flite), no download.
#
# Usage:
#   bash recipes/mini/run.sh                          # everything, about 2 h on 2 CPU cores (RESULTS.md)
#   bash recipes/mini/run.sh --stage 6 --stop-stage 7 # only decode + score again
#   bash recipes/mini/run.sh --help                   # all options with their current values
#
# Stages (outputs go to --work-dir, default recipes/mini/, as data/ and exp/; each stage leaves a .done
# marker and a rerun skips it; an interrupted training stage resumes from its last checkpoint). The same
# steps have the same numbers in every recipe (recipes/common/utils.sh); every hyperparameter is in the
# config, one train section per stage (conf/mini.yaml):
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
#  Latency as a decode-time choice (the LLM stages train over streaming.chunk_ms_choices):
#  11  sweep: decode the ASR and ST checkpoints at every chunk size in ${sweep_chunks} (read-ahead
#      ${sweep_read_ahead}) and in batch mode -> exp/<tag>_sweep/{asr,st}/sweep.{md,json,png}; with
#      --single-chunk-baseline true the ASR adapter is also trained on 640 ms targets only
#      (exp/<tag>_single) and swept beside it, so the gain of the chunk mix is measured in the same run
#  12  plot one test utterance: reference words and when each was committed (320/640/1280 ms, batch)
set -euo pipefail

# ----------------------------------------------------------------------------- options (defaults)
stage=0
stop_stage=12
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
overrides=""            # KEY=VALUE config overrides for every stage, e.g. "encoder.num_layers=2 train.ctc.epochs=4"
chunk_ms=640
chunk_ms2=320
threads=2               # torch threads per process
decode_batch=8          # utterances decoded together (speech-llm decode --batch-size)
sweep_chunks=320,480,640,960,1280
sweep_read_ahead=0,1
single_chunk_baseline=false   # stage 11: also train and sweep a 640 ms-only adapter (about 10 min more)
progress=true
work_dir=               # where data/ and exp/ go (default: the recipe dir)

help_message="Usage: $0 [options]   (the mini recipe; see the stage list at the top of this file)"
_argv=("$@")            # for cmdline.txt (parse_options.sh consumes the arguments)
. "$(dirname "${BASH_SOURCE[0]}")/../common/parse_options.sh"
recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "${recipe_dir}/../common/utils.sh"
no_positional "$@"

recipe_setup

exp=exp/${tag}
corpus=data/corpus
aligned=(data.train_manifest="${exp}/align/train.jsonl" data.valid_manifest="${exp}/align/dev.jsonl")
save_cmdline "${exp}" "${_argv[@]}"
log "recipe ${recipe_dir}; working in $(pwd); experiment ${exp}"

if stage_todo 0 data synth; then
  log "Stage 0: synthesize ${num_utts} utterances into ${corpus}"
  noise=(); [ "${noise_snr}" = none ] || noise=(--noise-snr "${noise_snr}")
  speech-llm prepare synth --out "${corpus}" --num-utts "${num_utts}" --seed "${seed}" "${noise[@]}" ${no_progress}
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
    --intermediate-size $((llm_hidden * 4)) --pretrain-steps "${llm_pretrain_steps}" ${no_progress}
  mark_done exp/tiny_llm build
fi

ctc_and_align_stages train dev "${all_extra[@]}"

if stage_todo 5 "${exp}" llm; then
  log "Stage 5: projector + LoRA -> ${exp}/llm"
  speech-llm train --config "${config}" --exp-dir "${exp}" --stage llm ${no_progress} \
    "${aligned[@]}" "${all_extra[@]}"
  mark_done "${exp}" llm
fi

decode() { decode_dir "${model}" "${test_set}" "$1" --batch-size "${decode_batch}" ${no_progress}; }

# track DECODE_STAGE SCORE_STAGE MODEL "SCORE OPTIONS" DIR...: decode the test set with MODEL into each DIR
# (the mode its name says), then score them into MODEL/results.{md,json} (baseline: the last DIR, batch).
track() {
  local dstage=$1 sstage=$2 score_opts=$4
  model=$3; shift 4
  if run_stage "${dstage}"; then
    log "Stage ${dstage}: decode ${test_set} with ${model}: ${*##*/}"
    run_pool 1 decode "$@"
  fi
  if run_stage "${sstage}"; then
    log "Stage ${sstage}: score ${*##*/} ${score_opts}"
    score_report "${model}/results" "${test_set}" "${score_opts}" "$@"
  fi
}

track 6 7 "${exp}" "" "${exp}/decode_test_${chunk_ms}ms" "${exp}/decode_test_${chunk_ms2}ms" "${exp}/decode_test_batch"

st_exp=${exp}_st
if stage_todo 8 "${st_exp}" llm; then
  log "Stage 8: speech translation adapter (en speech -> fr text) -> ${st_exp}/llm on ${exp}/ctc"
  speech-llm train --config "${config}" --exp-dir "${st_exp}" --stage llm --encoder-checkpoint "${exp}/ctc" \
    ${no_progress} "${aligned[@]}" "${all_extra[@]}" llm.task=st llm.target_lang=fr
  mark_done "${st_exp}" llm
fi
track 9 10 "${st_exp}" "--task st --lang fr" "${st_exp}/decode_test_${chunk_ms}ms" "${st_exp}/decode_test_batch"

sweep_dir=${exp}_sweep
if run_stage 11; then
  log "Stage 11: sweep chunk sizes ${sweep_chunks} x read-ahead ${sweep_read_ahead} -> ${sweep_dir}"
  asr_models=(--exp-dir "${exp}" --label chunk-mix)
  if [ "${single_chunk_baseline}" = true ]; then
    if stage_todo 11 "${exp}_single" llm; then
      log "Stage 11: baseline adapter on 640 ms targets only -> ${exp}_single/llm"
      speech-llm train --config "${config}" --exp-dir "${exp}_single" --stage llm --encoder-checkpoint "${exp}/ctc" \
        ${no_progress} "${aligned[@]}" "${all_extra[@]}" "streaming.chunk_ms_choices=[]"
      mark_done "${exp}_single" llm
    fi
    asr_models+=(--exp-dir "${exp}_single" --label 640ms-only)
  fi
  speech-llm sweep "${asr_models[@]}" --data "${test_set}" --out "${sweep_dir}/asr" --chunks "${sweep_chunks}" \
    --read-ahead "${sweep_read_ahead}" --batch-size "${decode_batch}" ${no_progress}
  if [ -d "${st_exp}/llm" ]; then
    speech-llm sweep --exp-dir "${st_exp}" --label chunk-mix-st --data "${test_set}" --out "${sweep_dir}/st" \
      --chunks "${sweep_chunks}" --read-ahead 0 --batch-size "${decode_batch}" --lang fr ${no_progress}
  fi
fi

if run_stage 12; then
  log "Stage 12: when each word was committed, one test utterance -> ${sweep_dir}/emissions.png"
  speech-llm plot-emissions --exp-dir "${exp}" --data "${test_set}" --chunks 320,640,1280 \
    --out "${sweep_dir}/emissions.png"
fi

results=(); run_stage 7 && results+=("${exp}/results.md"); run_stage 10 && results+=("${st_exp}/results.md")
run_stage 11 && results+=("${sweep_dir}/asr/sweep.md")
log "Done.${results[*]:+ Results: ${results[*]}}"
