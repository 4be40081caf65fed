"""Training stages of the speech LLM (DESIGN.md §2, issue 5).

``speech-llm train --config C --exp-dir E --stage ctc|align|llm`` runs one stage:

* ``ctc`` (:mod:`speech_llm.train.ctc`): the chunked streaming encoder with a CTC head, dynamic chunk
  training and SpecAugment -> ``E/ctc/{best,last}``;
* ``align`` (:mod:`speech_llm.train.align`): word start/end times from CTC forced alignment, written
  into the manifests;
* ``llm`` (:mod:`speech_llm.train.llm`): projector + LoRA (+ the ``<wait>`` token rows) on top of the
  frozen encoder, with streaming and batch-mode targets -> ``E/llm/{best,last}``.

The shared pieces: :mod:`~speech_llm.train.data` (manifest dataset with on-the-fly fbank, a resumable
duration-bucketed batch sampler), :mod:`~speech_llm.model.units` (CTC units) and
:mod:`~speech_llm.train.trainer` (the accelerate loop with resumable checkpoints).
"""
