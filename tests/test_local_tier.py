"""The local tier: real transformers loading and generate() on a tiny GPT-2 that the tests build."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from agent.chain import GeneratorChain, Tier
from agent.errors import TierUnavailable
from agent.generators.base import GenerationParams
from agent.generators.extractive import ExtractiveGenerator
from agent.generators.local import LocalGenerator, estimate_load_bytes, find_local_weights, model_slug
from agent.prompting import Prompt
from rag.retriever import Passage
from tests.conftest import AppFactory
from tests.fakes.tiny_model import build_tiny_gpt2

PROMPT = Prompt(
    "Where is the office?",
    (Passage("p1", "contact.md", "Contact", "Office", "Our office is in Bristol, on Redcliff Quay.", 0.7),),
)
GREEDY = GenerationParams(max_tokens=12, temperature=0.0)


@pytest.fixture(scope="module")
def rambling_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-rambling"), chat_template=True, never_stops=True)


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


def chain_of(local: LocalGenerator, timeout: float = 10.0) -> GeneratorChain:
    return GeneratorChain(
        [Tier(local, timeout), Tier(ExtractiveGenerator(), 5.0, last_resort=True)], deadline=30
    )


@pytest.mark.parametrize("chat", [True, False], ids=["chat-template", "plain-prompt"])
def test_generates_with_the_real_model(chat: bool, tiny_chat_model: Path, tiny_base_model: Path) -> None:
    folder = tiny_chat_model if chat else tiny_base_model
    generator = LocalGenerator(str(folder), params=GREEDY)
    assert (generator.status().state, generator.status().loaded) == ("idle", False)

    text = asyncio.run(generator.generate(PROMPT, timeout=10))

    assert (generator.status().state, generator.status().loaded) == ("ready", True)
    expected = expected_greedy_text(folder, PROMPT, 12, chat)
    assert text == expected.strip().split("\n\n\n")[0].strip()
    assert text


def test_model_is_loaded_once(tiny_chat_model: Path) -> None:
    generator = LocalGenerator(str(tiny_chat_model), params=GREEDY)

    async def twice() -> None:
        await generator.generate(PROMPT, timeout=10)
        first = generator._loaded
        await generator.generate(PROMPT, timeout=10)
        assert generator._loaded is first

    asyncio.run(twice())


def test_chain_answers_from_local_when_it_is_first(tiny_chat_model: Path) -> None:
    result = asyncio.run(chain_of(LocalGenerator(str(tiny_chat_model), params=GREEDY)).generate(PROMPT))
    assert (result.provider, result.degraded) == ("local", False)
    assert result.model == str(tiny_chat_model)


def test_models_dir_holds_hub_models_by_slug(tmp_path: Path, tiny_chat_model: Path) -> None:
    import shutil

    shutil.copytree(tiny_chat_model, tmp_path / model_slug("acme/tiny-chat"))
    assert find_local_weights("acme/tiny-chat", tmp_path) == tmp_path / "acme--tiny-chat"
    generator = LocalGenerator("acme/tiny-chat", models_dir=tmp_path, params=GREEDY)
    assert asyncio.run(generator.generate(PROMPT, timeout=10))


def test_missing_weights_skip_to_extractive_with_one_log_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert find_local_weights(str(tmp_path / "no-such-model")) is None
    assert find_local_weights("nobody/not-a-cached-model", tmp_path) is None
    missing = LocalGenerator(str(tmp_path / "no-such-model"))
    chain = chain_of(missing)
    for _ in range(3):
        result = asyncio.run(chain.generate(PROMPT))
        assert result.provider == "extractive" and not result.degraded
    with pytest.raises(TierUnavailable):
        asyncio.run(missing.generate(PROMPT, timeout=5))
    assert missing.status().state == "unavailable"
    assert capfd.readouterr().err.count("local_model_skipped") == 1


def test_a_folder_with_broken_files_refuses_to_load(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    generator = LocalGenerator(str(tmp_path))
    with pytest.raises(TierUnavailable):
        asyncio.run(generator.generate(PROMPT, timeout=5))
    assert generator.status().state == "unavailable"
    assert "failed to load" in generator.status().detail


def test_refuses_to_load_when_free_memory_is_short(
    tiny_chat_model: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # Keep more memory free than any machine has: the model would not fit beside it.
    generator = LocalGenerator(str(tiny_chat_model), params=GREEDY, memory_reserve_mb=10**9)
    result = asyncio.run(chain_of(generator).generate(PROMPT))

    assert result.provider == "extractive"
    status = generator.status()
    assert status.state == "unavailable" and status.loaded is False
    assert status.detail.startswith("not enough free memory: needs about")
    assert "local_model_refused" in capfd.readouterr().err


def test_a_memory_refusal_is_checked_again_later(tiny_chat_model: Path) -> None:
    generator = LocalGenerator(
        str(tiny_chat_model), params=GREEDY, memory_reserve_mb=10**9, memory_recheck_seconds=0.3
    )
    with pytest.raises(TierUnavailable):
        asyncio.run(generator.generate(PROMPT, timeout=5))
    assert generator.status().state == "unavailable"
    time.sleep(0.4)
    assert generator.status().state == "idle"  # worth another try: the chain will call it again
    generator._memory_reserve = 0  # memory was freed meanwhile
    assert asyncio.run(generator.generate(PROMPT, timeout=10))
    assert generator.status().loaded is True


def test_memory_estimate_scales_the_weights_to_the_loaded_dtype(tiny_chat_model: Path) -> None:
    weights = sum(p.stat().st_size for p in tiny_chat_model.glob("*.safetensors"))
    as_fp32 = estimate_load_bytes(tiny_chat_model, 4)
    assert weights < as_fp32 < weights * 1.5  # stored in float32: about the file size, plus slack
    assert estimate_load_bytes(tiny_chat_model, 2) == pytest.approx(as_fp32 / 2, rel=0.01)


def test_unloads_after_idle_seconds_and_reloads_on_need(tiny_chat_model: Path) -> None:
    generator = LocalGenerator(str(tiny_chat_model), params=GREEDY, idle_seconds=0.3)

    async def scenario() -> None:
        await generator.generate(PROMPT, timeout=10)
        assert generator.status().loaded is True
        await asyncio.sleep(1.0)
        assert generator.status().loaded is False and generator.status().state == "idle"
        assert await generator.generate(PROMPT, timeout=10)
        assert generator.status().loaded is True

    asyncio.run(scenario())


def test_preload_warms_up_in_the_background(tiny_chat_model: Path) -> None:
    generator = LocalGenerator(str(tiny_chat_model), params=GREEDY)
    generator.preload()
    deadline = time.monotonic() + 30
    while generator.status().loaded is not True:
        assert time.monotonic() < deadline, generator.status()
        time.sleep(0.05)


def test_one_generation_at_a_time_and_overflow_goes_to_the_next_tier(rambling_model: Path) -> None:
    generator = LocalGenerator(str(rambling_model), params=GenerationParams(max_tokens=200, temperature=0.0))
    chain = chain_of(generator, timeout=20.0)

    async def scenario() -> tuple[list[str], list[str], float]:
        # Nothing is known of the model's speed yet: while one generation runs, others do not queue.
        first = await asyncio.gather(*(chain.generate(PROMPT) for _ in range(3)))
        one_run = generator._mean_seconds or 0.0
        # Now its speed is known and well inside the timeout: a second request waits its turn.
        second = await asyncio.gather(*(chain.generate(PROMPT) for _ in range(2)))
        return [r.provider for r in first], [r.provider for r in second], one_run

    first, second, one_run = asyncio.run(scenario())
    assert first == ["local", "extractive", "extractive"]
    assert second == ["local", "local"]
    assert 0 < one_run < 5
    assert chain.stats.snapshot()["tiers"]["local"]["failures"] == {"busy": 2}


def test_a_queue_longer_than_the_timeout_overflows(rambling_model: Path) -> None:
    generator = LocalGenerator(str(rambling_model), params=GenerationParams(max_tokens=200, temperature=0.0))

    async def scenario() -> list[str]:
        await chain_of(generator, timeout=20.0).generate(PROMPT)  # learn the speed
        assert generator._mean_seconds is not None
        tight = chain_of(generator, timeout=generator._mean_seconds * 1.5)
        results = await asyncio.gather(*(tight.generate(PROMPT) for _ in range(3)))
        return [r.provider for r in results]

    # The first runs; the second would wait one run plus its own, past the timeout: it goes on.
    assert asyncio.run(scenario()) == ["local", "extractive", "extractive"]


def test_generation_stops_at_its_timeout(rambling_model: Path) -> None:
    generator = LocalGenerator(str(rambling_model), params=GenerationParams(max_tokens=256, temperature=0.0))
    asyncio.run(generator.generate(PROMPT, timeout=20))  # load the model first
    started = time.monotonic()
    text = asyncio.run(generator.generate(PROMPT, timeout=0.3))
    assert time.monotonic() - started < 1.5
    assert text  # cut short, but what it wrote is kept


def test_reply_is_cut_where_a_base_model_starts_a_new_turn() -> None:
    from agent.generators.local import _cut_at_stop

    assert _cut_at_stop("\n\n\n\nWe are in Bristol.\nQuestion: and parking?") == "We are in Bristol."
    assert _cut_at_stop("Open 9 to 5.\n\n\n\nUnrelated rambling") == "Open 9 to 5."


def test_the_app_preloads_the_local_model_and_answers_with_it(
    make_client: AppFactory, tiny_chat_model: Path
) -> None:
    client = make_client(
        agent={
            "llm_chain": "local,extractive",
            "fallback_model_name": str(tiny_chat_model),
            "local_model_preload": True,
            "chat_max_tokens": 16,
        }
    )
    deadline = time.monotonic() + 30
    while True:
        local = client.get("/health").json()["llm"]["chain"][0]
        if local["loaded"]:
            break
        assert time.monotonic() < deadline, local
        time.sleep(0.05)
    assert (local["provider"], local["state"], local["configured"]) == ("local", "ready", True)

    body = client.post("/chat", json={"message": "Where is your office?"}).json()
    assert body["status"] == "success" and body["model_info"]["provider"] == "local"
    assert body["model_info"]["model"] == str(tiny_chat_model)
    assert client.get("/stats/llm").json()["tiers"]["local"]["answered"] == 1


def test_minimal_resources_picks_a_much_smaller_default() -> None:
    from agent.settings import DEFAULT_LOCAL_MODEL, MINIMAL_LOCAL_MODEL, AgentSettings

    assert AgentSettings(_env_file=None).local_model_name == DEFAULT_LOCAL_MODEL
    assert AgentSettings(_env_file=None, minimal_resources=True).local_model_name == MINIMAL_LOCAL_MODEL
    chosen = AgentSettings(_env_file=None, minimal_resources=True, fallback_model_name="my/model")
    assert chosen.local_model_name == "my/model"  # an explicit choice wins


@pytest.mark.parametrize(
    ("chain", "message"),
    [("gemini,bard", "unknown tier"), ("extractive,gemini", "must come last"), ("local,local", "only once")],
)
def test_bad_chains_are_refused_at_start(chain: str, message: str) -> None:
    from pydantic import ValidationError

    from agent.settings import AgentSettings

    with pytest.raises(ValidationError, match=message):
        AgentSettings(_env_file=None, llm_chain=chain)
