"""Shared fixtures: real Chroma in temp dirs, the real bundled MiniLM, a fake Gemini over HTTP, a tiny
real GPT-2. Nothing here reaches the internet."""

from __future__ import annotations

import os

# Read when huggingface_hub is first imported: set before anything imports it.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"

import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent.leads.settings import LeadSettings
from agent.records.settings import RecordsSettings
from agent.settings import AgentSettings
from api.app import create_app
from api.settings import ApiSettings, Settings
from fakes.gemini_server import FakeGemini
from fakes.openai_server import FakeOpenAI
from fakes.tiny_model import build_tiny_gpt2
from rag.embedder import Embedder, resolve_model_path
from rag.ingestion import ensure_ingested
from rag.logs import LoggingSettings, configure_logging
from rag.onnx_encoder import export_onnx, onnx_file
from rag.settings import DEFAULT_EMBEDDING_MODEL, RagSettings
from rag.store import KnowledgeStore
from tests.servers.postgres import PostgresServer
from tests.servers.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE = ROOT / "knowledge"

# A `.env` in the checkout must not leak into tests: every test builds its settings explicitly.
NO_ENV_FILE: dict[str, Any] = {"_env_file": None}
# The session's exported embedding graph (apps, CLIs and server processes read EMBEDDING_CACHE_DIR): exported
# once below, never into the checkout's models/ folder.
EMBEDDING_CACHE = Path(tempfile.mkdtemp(prefix="kb-test-embeddings-"))
os.environ["EMBEDDING_CACHE_DIR"] = str(EMBEDDING_CACHE)
# Services started as processes keep their answer records here, never in the checkout's data/ folder.
os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="kb-test-records-")
LOCAL_CLIENT = ("127.0.0.1", 50000)

configure_logging(LoggingSettings(**NO_ENV_FILE))


def rag_settings(**overrides: Any) -> RagSettings:
    return RagSettings(**{**NO_ENV_FILE, "knowledge_dir": KNOWLEDGE, **overrides})


def agent_settings(**overrides: Any) -> AgentSettings:
    # The chain of a machine with no local model: tests that need more tiers say so.
    base: dict[str, Any] = {"google_api_key": None, "llm_chain": "gemini,extractive", "retry_delay": 0.01}
    return AgentSettings(**{**NO_ENV_FILE, **base, **overrides})


@pytest.fixture(scope="session", autouse=True)
def embedding_graph() -> Iterator[Path]:
    """MiniLM exported to ONNX once, verified against sentence-transformers, as a first start leaves it."""
    model = resolve_model_path(DEFAULT_EMBEDDING_MODEL)
    graph = export_onnx(model, onnx_file(EMBEDDING_CACHE, model))
    yield graph
    shutil.rmtree(EMBEDDING_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def embedder(embedding_graph: Path) -> Embedder:
    """One loaded MiniLM for the session, on ONNX Runtime as the service runs it."""
    shared = Embedder(DEFAULT_EMBEDDING_MODEL, cache_dir=EMBEDDING_CACHE)
    shared.load()
    assert shared.backend_in_use == "onnx"
    return shared


@pytest.fixture(scope="session")
def knowledge_store_dir(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """A store built once from the bundled knowledge folder; tests copy it rather than re-embed."""
    path = tmp_path_factory.mktemp("store")
    settings = rag_settings(chroma_path=path)
    ensure_ingested(KnowledgeStore.persistent(path, settings.collection_prefix), embedder, settings)
    return path


@pytest.fixture
def store_dir(tmp_path: Path, knowledge_store_dir: Path) -> Path:
    """A private copy of the built store: each test may change it freely."""
    target = tmp_path / "chroma"
    shutil.copytree(knowledge_store_dir, target)
    return target


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A real, empty Redis for this test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session, in its own temporary folder (gone afterwards)."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test: its SQLAlchemy URL (postgresql+psycopg://...)."""
    postgres_server.start()  # again, if an earlier test stopped it
    name = f"test_{uuid.uuid4().hex[:16]}"
    yield postgres_server.create_database(name)
    if postgres_server.running:
        postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def fake_gemini_server() -> Iterator[FakeGemini]:
    server = FakeGemini().start()
    yield server
    server.stop()


@pytest.fixture
def fake_gemini(fake_gemini_server: FakeGemini) -> FakeGemini:
    fake_gemini_server.reset()
    return fake_gemini_server


@pytest.fixture(scope="session")
def fake_openai_server() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def fake_openai(fake_openai_server: FakeOpenAI) -> FakeOpenAI:
    fake_openai_server.reset()
    return fake_openai_server


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-chat"), chat_template=True)


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-base"), chat_template=False)


class Clock:
    """A timer the cache reads instead of the wall clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


AppFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(store_dir: Path, tmp_path: Path) -> Iterator[AppFactory]:
    """Builds the real app (lifespan included) on a copy of the built store, its records in a SQLite file of
    its own (or where `records` says)."""
    clients: list[TestClient] = []

    def factory(
        *,
        api: dict[str, Any] | None = None,
        agent: dict[str, Any] | None = None,
        rag: dict[str, Any] | None = None,
        logs: dict[str, Any] | None = None,
        records: dict[str, Any] | None = None,
        leads: dict[str, Any] | None = None,
        clock: Clock | None = None,
    ) -> TestClient:
        settings = Settings(
            api=ApiSettings(**{**NO_ENV_FILE, "embedder_warmup": False, **(api or {})}),
            agent=agent_settings(**(agent or {})),
            rag=rag_settings(**{"chroma_path": store_dir, **(rag or {})}),
            logging=LoggingSettings(**{**NO_ENV_FILE, **(logs or {})}),
            records=RecordsSettings(**{**NO_ENV_FILE, "data_dir": tmp_path / "records", **(records or {})}),
            leads=LeadSettings(**{**NO_ENV_FILE, **(leads or {})}),
        )
        app = create_app(settings, cache_timer=clock) if clock else create_app(settings)
        client = TestClient(app, client=LOCAL_CLIENT)  # the operator, on the same machine
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)
