#!/usr/bin/env bash
# The GPU check (issue #19), one script, about 5-8 minutes on one GPU:
#   1. bf16 training steps of the 0.5B LibriSpeech config (conf/librispeech_qwen2.5_0.5b.yaml: the 80M
#      chunked Conformer, a Qwen2.5-0.5B-shaped LLM with random weights and a tokenizer trained here) on a
#      tone-word corpus (bench/gpu_check.py data: no synthesizer needed): the CTC stage, then the LLM stage
#      under `accelerate launch` with one process; the loss must fall; step time and peak memory;
#   2. batched decoding of 1, 8 and 64 streams with the 0.5B shape (bench/decode_speed.py --device cuda):
#      RTF and per-chunk latency, fp32 and bf16.
#
# Usage:
#   bash bench/gpu_check.sh [OUT_DIR]          # OUT_DIR default: $OUT (the device tool's), else /tmp/gpu_check_out
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_TINY=1 bash bench/gpu_check.sh /tmp/x   # a CPU dry run of every step (tiny)
#
# On the device machine, packages it lacks travel as wheels in .whl/ (bench/gpu_wheels.sh downloads them
# here); they are installed into /tmp/site first. Writes OUT_DIR/{env.txt,train.md,decode.md,gpu_check.log}.
# With the device tool: `bash bench/gpu_wheels.sh` here, then run command "bash bench/gpu_check.sh",
# carry [".whl"], timeout_s 540; copy train.md and decode.md into bench/RESULTS.md.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "${root}"
out=${1:-${OUT:-/tmp/gpu_check_out}}
work=${GPU_CHECK_WORK:-/tmp/gpu_check}
device=${GPU_CHECK_DEVICE:-cuda}
tiny=${GPU_CHECK_TINY:-}
mkdir -p "${out}"
rm -rf "${work}" && mkdir -p "${work}"
exec > >(tee "${out}/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH=${root}${PYTHONPATH:+:${PYTHONPATH}}
python=${PYTHON:-python3}
# (the wheels are for the device machine's Python 3.12; a dry run elsewhere uses its own environment)
if compgen -G ".whl/*.whl" > /dev/null && "${python}" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then
  "${python}" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH}
fi
start=$(date +%s)
stamp() { echo "== $(( $(date +%s) - start )) s: $*"; }

stamp "environment"
{ nvidia-smi 2>/dev/null || echo "(no nvidia-smi)"; "${python}" -m speech_llm doctor || true; } | tee "${out}/env.txt"

# ---------------------------------------------------------------- 1. training
if [ -n "${tiny}" ]; then   # the CPU dry run: the same steps, toy sizes
  utts=40; llm=(--hidden-size 64 --num-layers 2 --num-heads 4 --num-kv-heads 2 --intermediate-size 128)
  enc=(encoder.d_model=64 encoder.num_layers=2 encoder.num_heads=4 encoder.ffn_dim=128 projector.hidden_dim=64)
  steps_ctc=20; steps_llm=60; frames=3000; precision=fp32; cpu=(--cpu)
else
  utts=384; llm=(--hidden-size 896 --num-layers 24 --num-heads 14 --num-kv-heads 2 --intermediate-size 4864)
  enc=(); steps_ctc=120; steps_llm=120; frames=20000; precision=bf16; cpu=()
fi
stamp "tone-word corpus (${utts} utterances) and a random Qwen2.5-0.5B-shaped LLM"
"${python}" bench/gpu_check.py data --out "${work}/data" --num-utts "${utts}"
"${python}" -m speech_llm build-llm --text "${work}/data/train/text" --kaldi-text --out "${work}/llm" --overwrite \
  --arch qwen2 --vocab-size 400 "${llm[@]}" --pretrain-steps 0
cfg=conf/librispeech_qwen2.5_0.5b.yaml
common=(data.train_manifest="${work}/data/train/manifest.jsonl" data.valid_manifest="${work}/data/dev/manifest.jsonl"
        data.cmvn_path="${work}/exp/cmvn.json" data.units_path="${work}/exp/units.txt" ctc.units=char
        llm.path_or_name="${work}/llm" "${enc[@]}")
stamp "CTC stage: ${steps_ctc} steps (${precision})"
"${python}" -m speech_llm train --config "${cfg}" --exp-dir "${work}/exp" --stage ctc --no-progress "${cpu[@]}" \
  "${common[@]}" train.ctc.max_steps="${steps_ctc}" train.ctc.epochs=1000 train.ctc.warmup_steps=20 train.ctc.lr=2e-3 \
  train.ctc.log_every=5 train.ctc.save_every="${steps_ctc}" train.ctc.valid_every="${steps_ctc}" \
  train.ctc.max_frames_per_batch="${frames}" train.ctc.num_workers=2 train.ctc.precision="${precision}" \
  train.ctc.spec_augment=false
stamp "LLM stage under accelerate launch (1 process): ${steps_llm} steps (${precision})"
launch=(accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no)
[ -n "${tiny}" ] && launch+=(--cpu)
"${launch[@]}" -m speech_llm train --config "${cfg}" --exp-dir "${work}/exp" --stage llm --no-progress "${cpu[@]}" \
  "${common[@]}" train.llm.max_steps="${steps_llm}" train.llm.epochs=1000 train.llm.warmup_steps=10 train.llm.lr=1e-3 \
  train.llm.log_every=5 train.llm.save_every="${steps_llm}" train.llm.valid_every="${steps_llm}" \
  train.llm.max_frames_per_batch="${frames}" train.llm.num_workers=2 train.llm.precision="${precision}"
stamp "training summary"
train_rc=0
"${python}" bench/gpu_check.py summary --exp-dir "${work}/exp" | tee "${out}/train.md" || train_rc=$?

# ---------------------------------------------------------------- 2. batched decoding
if [ -n "${tiny}" ]; then
  dec=(--models mini --quick --streams 1,2,3 --precisions fp32)
else
  dec=(--models 0.5b --seconds-0.5b 20 --streams 1,8,64 --precisions fp32,bf16 --threads 4)
fi
stamp "batched decoding: ${dec[*]}"
"${python}" bench/decode_speed.py --device "${device}" "${dec[@]}" | tee "${out}/decode.md"
stamp "done (training check rc=${train_rc})"
exit "${train_rc}"
