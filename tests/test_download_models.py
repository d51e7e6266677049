"""`python -m agent download-models` as an operator runs it, against a fake hub that the real
huggingface_hub client downloads from over HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.generators.base import GenerationParams
from agent.generators.local import LocalGenerator, find_local_weights
from agent.prompting import Prompt
from tests.conftest import ROOT
from tests.fakes.hf_hub import FakeHub

REPO = "acme/tiny-chat"
BROKEN = "acme/broken-chat"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, tiny_chat_model: Path) -> Iterator[FakeHub]:
    server = FakeHub().start()
    server.add_repo(REPO, tiny_chat_model)
    server.add_repo(BROKEN, tiny_chat_model).corrupt("model.safetensors")
    yield server
    server.stop()


def download_models(
    hub: FakeHub, home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # The test session runs offline (conftest); the command under test must see an online environment.
    base = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    return subprocess.run(
        [sys.executable, "-m", "agent", "download-models", *args],
        cwd=ROOT,
        env={**base, "HF_ENDPOINT": hub.url, "HF_HOME": str(home / "hf-home"), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def downloaded(
    hub: FakeHub, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], Path]:
    home = tmp_path_factory.mktemp("download")
    result = download_models(hub, home, "--model", REPO, "--models-dir", str(home / "models"))
    return result, home


def test_download_gives_a_folder_the_local_tier_loads(
    hub: FakeHub, downloaded: tuple[subprocess.CompletedProcess[str], Path]
) -> None:
    result, home = downloaded
    models = home / "models"
    assert result.returncode == 0, result.stderr
    folder = models / "acme--tiny-chat"
    names = {p.name for p in folder.iterdir() if p.is_file()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= names
    assert not names & {"README.md", ".gitattributes"}  # only what a causal LM needs
    assert re.search(rf"{REPO}: ok .*acme--tiny-chat\s+{len(names)} files, \d+\.\d MB on disk", result.stdout)
    assert re.search(r"total: 1 of 1 model\(s\) ready, \d+ files, \d+\.\d MB on disk", result.stdout)
    assert len(hub.downloads_of(REPO, "model.safetensors")) >= 1
    assert not (home / "hf-home" / "hub" / "models--acme--tiny-chat").exists()  # no global cache copy

    assert find_local_weights(REPO, models) == folder
    generator = LocalGenerator(REPO, models_dir=models, params=GenerationParams(max_tokens=12, temperature=0))
    try:
        answer = asyncio.run(generator.generate(Prompt("Where is the office?", ()), timeout=10))
    finally:
        asyncio.run(generator.aclose())
    assert answer.strip()


def test_second_run_keeps_the_files_and_verifies_again(
    hub: FakeHub, downloaded: tuple[subprocess.CompletedProcess[str], Path]
) -> None:
    first, home = downloaded
    assert first.returncode == 0, first.stderr
    weights = home / "models" / "acme--tiny-chat" / "model.safetensors"
    modified = weights.stat().st_mtime_ns
    fetched = len(hub.downloads_of(REPO, "model.safetensors"))

    again = download_models(hub, home, "--model", REPO, "--models-dir", str(home / "models"))

    assert again.returncode == 0, again.stderr
    assert len(hub.downloads_of(REPO, "model.safetensors")) == fetched
    assert weights.stat().st_mtime_ns == modified
    assert f"{REPO}: ok" in again.stdout


def test_a_corrupted_download_fails_verification(hub: FakeHub, tmp_path: Path) -> None:
    result = download_models(hub, tmp_path, "--model", BROKEN, "--models-dir", str(tmp_path / "models"))

    assert result.returncode == 1
    assert f"{BROKEN}: FAILED sha256: model.safetensors does not match" in result.stderr
    assert "total: 0 of 1 model(s) ready" in result.stdout


def test_an_unknown_repo_is_one_readable_line(hub: FakeHub, tmp_path: Path) -> None:
    result = download_models(
        hub, tmp_path, "--model", "acme/missing", "--models-dir", str(tmp_path / "models")
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    failures = [line for line in result.stderr.splitlines() if "acme/missing: FAILED" in line]
    assert len(failures) == 1 and "repository not found" in failures[0], result.stderr
    assert any(r.path == "/api/models/acme/missing" for r in hub.requests)


def test_offline_mode_is_refused(hub: FakeHub, tmp_path: Path) -> None:
    requests = len(hub.requests)
    result = download_models(
        hub, tmp_path, "--model", REPO, "--models-dir", str(tmp_path / "models"), env={"HF_HUB_OFFLINE": "1"}
    )

    assert result.returncode == 2
    assert "HF_HUB_OFFLINE" in result.stderr and "Traceback" not in result.stderr
    assert len(hub.requests) == requests
    assert not (tmp_path / "models").exists()
