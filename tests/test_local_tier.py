"""The local tier on transformers: real loading and generate() on a tiny GPT-2 that the tests build, and on
SmolLM2-135M-Instruct read from its GGUF file (the same file the llama.cpp tests use)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from agent.chain import TIMEOUT_GRACE, GeneratorChain, Tier
from agent.errors import FallThroughError, TierUnavailable
from agent.generators.base import GenerationParams
from agent.generators.extractive import ExtractiveGenerator
from agent.generators.local import (
    CUT_NOTE,
    LocalGenerator,
    SentenceGate,
    StopCutter,
    TransformersBackend,
    estimate_load_bytes,
    find_local_weights,
    model_slug,
)
from agent.prompting import ContextBudget, Prompt, compact
from fakes.tiny_model import build_tiny_gpt2
from rag.retriever import Passage
from tests.conftest import AppFactory
from tests.test_llama_cpp_tier import smollm2_gguf

PROMPT = Prompt(
    "Where is the office?",
    (Passage("p1", "contact.md", "Contact", "Office", "Our office is in Bristol, on Redcliff Quay.", 0.7),),
)
GREEDY = GenerationParams(max_tokens=12, temperature=0.0)


@pytest.fixture(scope="module")
def rambling_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-rambling"), chat_template=True, never_stops=True)


def chain_of(local: LocalGenerator, timeout: float = 10.0) -> GeneratorChain:
    return GeneratorChain(
        [Tier(local, timeout), Tier(ExtractiveGenerator(), 5.0, last_resort=True)], deadline=30
    )


async def attempt(generator: LocalGenerator, timeout: float = 10.0) -> str:
    """The answer, or the reason it fell through: the tiny GPT-2 writes no sentence, so its answers, cut at
    the token limit, fall through as `cut`; what these tests look at is the tier around the model."""
    try:
        return await generator.generate(PROMPT, timeout=timeout)
    except FallThroughError as exc:
        return f"fell through: {exc.reason}"


def loaded_model(generator: LocalGenerator) -> object:
    backend = generator._backend
    assert isinstance(backend, TransformersBackend)
    return backend._model


# -- the tiny GPT-2 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("chat", [True, False], ids=["chat-template", "plain-prompt"])
def test_an_answer_without_a_complete_sentence_falls_through_as_cut(
    chat: bool, tiny_chat_model: Path, tiny_base_model: Path
) -> None:
    generator = LocalGenerator(str(tiny_chat_model if chat else tiny_base_model), params=GREEDY)
    assert (generator.status().state, generator.status().loaded) == ("idle", False)
    assert generator.status().detail == "loads on first use (transformers)"

    with pytest.raises(FallThroughError) as failure:
        asyncio.run(generator.generate(PROMPT, timeout=10))

    assert failure.value.reason == "cut"  # 12 tokens of gibberish: no sentence to keep
    assert generator.tokens_generated == 12
    assert (generator.status().state, generator.status().loaded) == ("ready", True)
    assert generator.status().detail == "loaded (transformers)"


def test_model_is_loaded_once(tiny_chat_model: Path) -> None:
    generator = LocalGenerator(str(tiny_chat_model), params=GREEDY)

    async def twice() -> None:
        await attempt(generator)
        first = loaded_model(generator)
        await attempt(generator)
        assert loaded_model(generator) is first is not None

    asyncio.run(twice())


def test_models_dir_holds_hub_models_by_slug(tmp_path: Path, tiny_chat_model: Path) -> None:
    import shutil

    shutil.copytree(tiny_chat_model, tmp_path / model_slug("acme/tiny-chat"))
    assert find_local_weights("acme/tiny-chat", tmp_path) == tmp_path / "acme--tiny-chat"
    generator = LocalGenerator("acme/tiny-chat", models_dir=tmp_path, params=GREEDY)
    assert asyncio.run(attempt(generator)) == "fell through: cut"
    assert generator.status().loaded is True


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
    asyncio.run(attempt(generator))
    assert generator.status().loaded is True


def test_memory_estimate_scales_the_weights_to_the_loaded_dtype(tiny_chat_model: Path) -> None:
    weights = sum(p.stat().st_size for p in tiny_chat_model.glob("*.safetensors"))
    as_fp32 = estimate_load_bytes(tiny_chat_model, 4)
    assert weights < as_fp32 < weights * 1.5  # stored in float32: about the file size, plus slack
    assert estimate_load_bytes(tiny_chat_model, 2) == pytest.approx(as_fp32 / 2, rel=0.01)


def test_unloads_after_idle_seconds_and_reloads_on_need(tiny_chat_model: Path) -> None:
    generator = LocalGenerator(str(tiny_chat_model), params=GREEDY, idle_seconds=0.3)

    async def scenario() -> None:
        await attempt(generator)
        assert generator.status().loaded is True
        await asyncio.sleep(1.0)
        assert generator.status().loaded is False and generator.status().state == "idle"
        assert loaded_model(generator) is None
        assert await attempt(generator) == "fell through: cut"  # it generated again, after a reload
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

    async def scenario() -> float:
        # Nothing is known of the model's speed yet: while one generation runs, others do not queue.
        await asyncio.gather(*(chain.generate(PROMPT) for _ in range(3)))
        assert chain.stats.snapshot()["tiers"]["local"]["failures"] == {"busy": 2, "cut": 1}
        one_run = generator._mean_seconds or 0.0
        # Now its speed is known and well inside the timeout: a second request waits its turn.
        await asyncio.gather(*(chain.generate(PROMPT) for _ in range(2)))
        return one_run

    one_run = asyncio.run(scenario())
    assert 0 < one_run < 5
    # Both ran (200 tokens of rambling hold no sentence, so each fell through as cut): none overflowed.
    assert chain.stats.snapshot()["tiers"]["local"]["failures"] == {"busy": 2, "cut": 3}
    assert generator.tokens_generated == 3 * 200


def test_a_queue_longer_than_the_timeout_overflows(rambling_model: Path) -> None:
    generator = LocalGenerator(str(rambling_model), params=GenerationParams(max_tokens=200, temperature=0.0))

    async def scenario() -> dict[str, int]:
        await chain_of(generator, timeout=20.0).generate(PROMPT)  # learn the speed
        assert generator._mean_seconds is not None
        tight = chain_of(generator, timeout=generator._mean_seconds * 1.5)
        await asyncio.gather(*(tight.generate(PROMPT) for _ in range(3)))
        failures: dict[str, int] = tight.stats.snapshot()["tiers"]["local"]["failures"]
        return failures

    # The first runs; the second would wait one run plus its own, past the timeout: it goes on.
    assert asyncio.run(scenario())["busy"] == 2


@pytest.mark.parametrize("budget", [0.5, 0.8])
def test_a_tiny_time_budget_falls_through_inside_the_budget(rambling_model: Path, budget: float) -> None:
    generator = LocalGenerator(str(rambling_model), params=GenerationParams(max_tokens=4000, temperature=0.0))
    asyncio.run(attempt(generator, timeout=20))  # load the model first
    started = time.monotonic()
    with pytest.raises(FallThroughError) as failure:
        asyncio.run(generator.generate(PROMPT, timeout=budget))
    # Decoding stopped a margin inside the budget: the chain, waiting TIMEOUT_GRACE past it, never has to
    # throw a generation away.
    assert time.monotonic() - started < budget
    assert failure.value.reason == "cut"


def test_the_chain_gets_a_cut_generation_back_before_its_own_timeout(rambling_model: Path) -> None:
    generator = LocalGenerator(str(rambling_model), params=GenerationParams(max_tokens=4000, temperature=0.0))
    chain = chain_of(generator, timeout=0.6)
    asyncio.run(attempt(generator, timeout=20))
    started = time.monotonic()
    result = asyncio.run(chain.generate(PROMPT))
    assert result.provider == "extractive"
    assert chain.stats.snapshot()["tiers"]["local"]["failures"] == {"cut": 1}  # not a chain timeout
    assert time.monotonic() - started < 0.6 + TIMEOUT_GRACE + 1.0  # the extractive answer included


# -- the stop and cut rules -------------------------------------------------------------------------------


def test_reply_is_cut_where_a_model_starts_a_new_turn_or_echoes_markup() -> None:
    from agent.generators.local import _cut_at_stop

    assert _cut_at_stop("\n\n\n\nWe are in Bristol.\nQuestion: and parking?") == "We are in Bristol."
    assert _cut_at_stop("Open 9 to 5.\n\n\n\nUnrelated rambling") == "Open 9 to 5."
    assert _cut_at_stop("Open 9 to 5.</conversation>\nVisitor: hi") == "Open 9 to 5."
    assert _cut_at_stop('It costs 4,000.\n<document index="5" title="x">') == "It costs 4,000.\n"
    assert _cut_at_stop("Yes.<|im_end|>\n<|im_start|>user\nMore?") == "Yes."


def test_a_stream_holds_back_what_might_be_a_stop_marker() -> None:
    cutter = StopCutter()
    assert cutter.feed("We are in Bristol.\nVis") == "We are in Bristol."
    assert cutter.feed("itor: where?") == "" and cutter.stopped
    other = StopCutter()
    assert other.feed("Line one\nVis") == "Line one"
    assert other.feed("it us.") == "\nVisit us."


def test_the_sentence_gate_releases_whole_sentences_and_cuts_at_the_last_one() -> None:
    gate = SentenceGate()
    released = [
        gate.feed(piece) for piece in ("  We are", " in Bristol", ". Parking is", " free", ". The pri")
    ]
    assert released == ["", "", "We are in Bristol.", "", " Parking is free."]
    assert gate.cut() == CUT_NOTE  # "The pri" is dropped: never a word cut in half

    numbers = SentenceGate()
    assert numbers.feed("It costs 4.") == ""  # "4." may go on as "4.000": not yet a sentence
    assert numbers.feed("000 pounds.\n- SEO") == "It costs 4.000 pounds."
    assert numbers.finish() == "\n- SEO"  # a natural end keeps everything

    nothing = SentenceGate()
    assert nothing.feed("no sentence here") == "" and not nothing.released


# -- SmolLM2 from its GGUF file, on transformers -----------------------------------------------------------


def test_transformers_loads_the_same_gguf_file_and_answers_like_transformers_itself() -> None:
    import torch

    # One thread: FIELD-NOTES measured oversubscribed torch threads collapse beside other work.
    generator = LocalGenerator(
        str(smollm2_gguf()),
        params=GenerationParams(max_tokens=48, temperature=0.0),
        backend="transformers",
        threads=1,
    )
    assert generator.model == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert generator.status().detail == "loads on first use (transformers)"
    text = asyncio.run(generator.generate(PROMPT, timeout=120))
    assert generator.status().detail == "loaded (transformers)"

    # The same weights straight through transformers' own generate(), on the same compact prompt.
    tokenizer, model = loaded_model(generator)  # type: ignore[misc]
    inputs = tokenizer.apply_chat_template(
        compact(PROMPT, ContextBudget()).messages(),
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=48, do_sample=False, repetition_penalty=1.1)
    new = out[0][inputs["input_ids"].shape[-1] :]
    raw = str(tokenizer.decode(new, skip_special_tokens=True)).strip()
    if int(new[-1]) == tokenizer.eos_token_id or len(new) < 48:
        assert text == raw
    else:  # cut at the token limit: its complete sentences, and the note
        assert text.endswith(CUT_NOTE) and raw.startswith(text.removesuffix(CUT_NOTE))
    assert "Bristol" in text


def test_the_app_preloads_the_local_model_and_reports_it(
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
    assert (local["model"], local["detail"]) == (str(tiny_chat_model), "loaded (transformers)")

    body = client.post("/chat", json={"message": "Where is your office?"}).json()
    # The tiny model writes no sentence in 16 tokens: its answer falls through, and extractive answers.
    assert body["status"] == "success" and body["model_info"]["provider"] == "extractive"
    assert client.get("/stats/llm").json()["tiers"]["local"]["failures"] == {"cut": 1}


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
