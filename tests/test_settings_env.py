"""A blank variable, in the environment or in `.env`, means the setting's default, in every settings model:
docker-compose passes `KEY: ${KEY:-}` through as an empty string."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from agent.settings import AgentSettings
from api.settings import ApiSettings
from rag.logs import LoggingSettings
from rag.settings import RagSettings

MODELS: list[type[BaseSettings]] = [ApiSettings, AgentSettings, RagSettings, LoggingSettings]


def _defaults(model: type[BaseSettings], monkeypatch: pytest.MonkeyPatch) -> BaseSettings:
    for name in model.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    return model(_env_file=None)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_blank_variable_means_the_default(
    model: type[BaseSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    defaults = _defaults(model, monkeypatch)
    for name in model.model_fields:
        monkeypatch.setenv(name.upper(), "")
    assert model(_env_file=None) == defaults


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_a_blank_line_in_the_env_file_means_the_default(
    model: type[BaseSettings], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    defaults = _defaults(model, monkeypatch)
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{name.upper()}=\n" for name in model.model_fields))
    assert model(_env_file=env_file) == defaults


def test_blank_keys_leave_the_remote_tiers_off(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("GOOGLE_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "OPENAI_API_KEY", "FALLBACK_MODEL_NAME")
    for name in names:
        monkeypatch.setenv(name, "")
    settings = AgentSettings(_env_file=None)
    assert settings.google_api_key is None and settings.openai_base_url is None
    assert settings.openai_model is None and settings.openai_api_key is None
    assert settings.fallback_model_name is None


def test_a_set_variable_still_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "a-real-key")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("CHROMA_HOST", "chroma")
    key = AgentSettings(_env_file=None).google_api_key
    assert key is not None and key.get_secret_value() == "a-real-key"
    assert LoggingSettings(_env_file=None).log_level == "DEBUG"
    assert RagSettings(_env_file=None).chroma_host == "chroma"
