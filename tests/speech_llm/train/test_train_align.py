"""Stage align: CTC forced alignment writes word times into a manifest, atomically and path-preserving."""

from __future__ import annotations

import json
import shutil

from speech_llm.train.align import align_manifest, run_align_stage
from speech_llm.train.toy import make_toy_experiment


def _copy_with_relative_audio(src, dst_dir):
    """The manifest with relative audio paths (audio copied next to it) and without word times."""
    dst_dir.mkdir()
    lines = []
    for line in open(src):
        rec = json.loads(line)
        name = rec["key"] + ".flac"
        shutil.copy(rec["audio"], dst_dir / name)
        rec["audio"] = name
        rec.pop("words")
        lines.append(json.dumps(rec))
    (dst_dir / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return dst_dir / "manifest.jsonl"


def test_align_writes_word_times_in_place(ctc_run, toy_root, tmp_path):
    exp, _ = ctc_run
    cfg = make_toy_experiment(toy_root)
    manifest = _copy_with_relative_audio(cfg.data.valid_manifest, tmp_path / "dev")
    report = align_manifest(exp, manifest, progress=False)
    assert report.manifest == manifest and report.aligned == 2 and not report.failed
    for line in manifest.read_text().splitlines():
        rec = json.loads(line)
        assert not rec["audio"].startswith("/")  # paths kept as written
        words = rec["words"]
        assert [w["word"] for w in words] == rec["text"].split()
        assert all(0 <= w["start"] <= w["end"] <= rec["duration"] for w in words)
        assert all(a["end"] <= b["start"] + 1e-9 for a, b in zip(words, words[1:]))  # in order, no overlap
    assert not list(manifest.parent.glob(".*tmp"))  # no temporary file left behind


def test_align_stage_reports_utterances_it_cannot_align(ctc_run, toy_root, tmp_path):
    exp, _ = ctc_run
    cfg = make_toy_experiment(toy_root)
    rec = json.loads(open(cfg.data.valid_manifest).readline())
    rec["text"] = " ".join(["WORD"] * 200)  # far more units than the encoder has frames
    manifest = tmp_path / "long.jsonl"
    manifest.write_text(json.dumps(rec) + "\n")
    out = tmp_path / "aligned.jsonl"
    (report,) = run_align_stage(cfg, exp, manifests=[str(manifest)], out=str(out), progress=False)
    assert report.aligned == 0 and report.failed[0][0] == rec["key"]
    assert "frames" in report.failed[0][1]
    assert json.loads(out.read_text())["words"] == rec["words"]  # kept what it had
