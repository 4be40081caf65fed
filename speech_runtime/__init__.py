"""Speech recognition with an exported speech LLM on onnxruntime and numpy: no torch at run time.

    import speech_runtime
    rec = speech_runtime.load_recognizer("exp/mini/onnx")   # written by `speech-llm export`
    s = rec.create_stream()
    s.accept_waveform(16000, samples); s.input_finished(); rec.decode(s)
    print(rec.get_result(s).text)

Install without torch: ``pip install --no-deps .`` then ``pip install -r requirements/runtime.txt`` (numpy,
onnxruntime, tokenizers, soundfile), see docs/DEPLOYMENT.md. Nothing in this package imports torch,
transformers, ``speech_llm`` or ``encoders``.
"""

from speech_runtime.recognizer import (
    Recognizer,
    Result,
    Stream,
    file_blocks,
    is_export_dir,
    load_recognizer,
    stream_file,
)

__all__ = ["Recognizer", "Result", "Stream", "file_blocks", "is_export_dir", "load_recognizer", "stream_file"]
