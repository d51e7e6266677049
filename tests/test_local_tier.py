"""The local tier: real transformers loading and generate() on a tiny GPT-2 that the tests build."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from agent.chain import GeneratorChain, Tier
from agent.errors import TierUnavailable
from agent.generators.extractive import ExtractiveGenerator
from agent.generators.local import LocalGenerator, find_local_weights
from agent.prompting import Prompt
from rag.retriever import Passage

PROMPT = Prompt(
    "Where is the office?",
    (Passage("p1", "contact.md", "Contact", "Office", "Our office is in Bristol, on Redcliff Quay.", 0.7),),
)


def expected_greedy_text(folder: Path, prompt: Prompt, max_new: int, chat: bool) -> str:
    """What the same weights produce for the same input, computed straight with transformers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    if chat:
        messages = [
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": prompt.user_message()},
        ]
        inputs = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
    else:
        inputs = tokenizer(prompt.plain_text(), return_tensors="pt")
    window = model.config.max_position_embeddings
    inputs = {k: v[:, -(window - max_new) :] for k, v in inputs.items()}
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            max_new_tokens=max_new,
            do_sample=False,
            repetition_penalty=1.1,
            pad_token_id=tokenizer.eos_token_id,
        )
    return str(tokenizer.decode(out[0][inputs["input_ids"].shape[-1] :], skip_special_tokens=True))


@pytest.mark.parametrize("chat", [True, False], ids=["chat-template", "plain-prompt"])
def test_generates_with_the_real_model(chat: bool, tiny_chat_model: Path, tiny_base_model: Path) -> None:
    folder = tiny_chat_model if chat else tiny_base_model
    generator = LocalGenerator(str(folder), max_tokens=12, temperature=0.0)
    assert generator.status().state == "idle"

    text = asyncio.run(generator.generate(PROMPT))

    assert generator.status().state == "ready"
    expected = expected_greedy_text(folder, PROMPT, 12, chat)
    assert text == expected.strip().split("\n\n\n")[0].strip()
    assert text


def test_model_is_loaded_once(tiny_chat_model: Path) -> None:
    generator = LocalGenerator(str(tiny_chat_model), max_tokens=12, temperature=0.0)

    async def twice() -> None:
        await generator.generate(PROMPT)
        first = generator._loaded
        await generator.generate(PROMPT)
        assert generator._loaded is first

    asyncio.run(twice())


def test_chain_answers_from_local_when_it_is_first(tiny_chat_model: Path) -> None:
    local = LocalGenerator(str(tiny_chat_model), max_tokens=12, temperature=0.0)
    result = asyncio.run(GeneratorChain([Tier(local), Tier(ExtractiveGenerator())]).generate(PROMPT))
    assert (result.provider, result.degraded) == ("local", False)
    assert result.model == str(tiny_chat_model)


def test_missing_weights_skip_to_extractive_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert find_local_weights(str(tmp_path / "no-such-model")) is None
    assert find_local_weights("nobody/not-a-cached-model") is None
    with caplog.at_level(logging.INFO):
        missing = LocalGenerator(str(tmp_path / "no-such-model"))
        chain = GeneratorChain([Tier(missing), Tier(ExtractiveGenerator())])
        for _ in range(3):
            result = asyncio.run(chain.generate(PROMPT))
            assert result.provider == "extractive" and not result.degraded
        with pytest.raises(TierUnavailable):
            asyncio.run(missing.generate(PROMPT))
    assert missing.status().state == "unavailable"
    assert sum("local_model_skipped" in r.getMessage() for r in caplog.records) == 1


def test_a_folder_without_a_model_refuses_to_load(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    generator = LocalGenerator(str(tmp_path))
    with pytest.raises(TierUnavailable):
        asyncio.run(generator.generate(PROMPT))
    assert generator.status().state == "unavailable"
    assert "failed to load" in generator.status().detail
