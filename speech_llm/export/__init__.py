"""Export a trained speech LLM to ONNX for :mod:`speech_runtime` (onnxruntime, no torch at run time).

    from speech_llm.export import export_checkpoint
    export_checkpoint("exp/mini", "exp/mini/onnx", int8=True)

See :mod:`speech_llm.export.onnx_export` for what is written, and docs/DEPLOYMENT.md.
"""

from speech_llm.export.onnx_export import MANIFEST, export_checkpoint, export_recognizer

__all__ = ["MANIFEST", "export_checkpoint", "export_recognizer"]
