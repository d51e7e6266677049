"""`python -m agent download-models` as an operator runs it, against a fake hub that the real
huggingface_hub client downloads from over HTTP: model folders, and single GGUF files (the real SmolLM2)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.errors import FallThroughError
from agent.generators.base import GenerationParams
from agent.generators.local import LocalGenerator, find_local_weights
from agent.prompting import Prompt
from fakes.hf_hub import LFS_SUFFIXES, FakeHub, FakeRepo
from tests.conftest import ROOT
from tests.test_llama_cpp_tier import GGUF_NAME, smollm2_gguf

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
        asyncio.run(generator.generate(Prompt("Where is the office?", ()), timeout=10))
    except FallThroughError as exc:  # the tiny model writes no sentence: its 12 tokens are cut
        assert exc.reason == "cut"
    finally:
        asyncio.run(generator.aclose())
    assert generator.status().loaded is True and generator.tokens_generated == 12


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


# -- GGUF files ---------------------------------------------------------------------------------------------

GGUF_REPO = "acme/smol-gguf"


class GgufRepo(FakeRepo):
    """GGUF files are LFS files on the real hub: listed with their sha256."""

    def is_lfs(self, name: str) -> bool:
        return name.endswith((*LFS_SUFFIXES, ".gguf"))


@pytest.fixture(scope="module")
def gguf_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    folder = tmp_path_factory.mktemp("gguf-repo")
    (folder / GGUF_NAME).symlink_to(smollm2_gguf())
    (folder / "README.md").write_text("SmolLM2 as GGUF\n")
    server = FakeHub().start()
    for repo_id in (GGUF_REPO, "acme/broken-gguf"):
        plain = server.add_repo(repo_id, folder)
        server.repos[repo_id] = GgufRepo(files=plain.files, sha=plain.sha)
    server.repos["acme/broken-gguf"].corrupt(GGUF_NAME)
    yield server
    server.stop()


def test_a_gguf_file_downloads_into_models_dir_and_the_local_tier_runs_it(
    gguf_hub: FakeHub, tmp_path: Path
) -> None:
    source = f"{GGUF_REPO}/{GGUF_NAME}"
    models = tmp_path / "models"

    result = download_models(gguf_hub, tmp_path, "--model", source, "--models-dir", str(models))

    assert result.returncode == 0, result.stderr
    target = models / "acme--smol-gguf" / GGUF_NAME
    assert target.is_file() and target.stat().st_size == smollm2_gguf().stat().st_size
    assert not (models / "acme--smol-gguf" / "README.md").exists()  # the one file asked for
    assert re.search(rf"{source}: ok .*acme--smol-gguf\s+1 files, \d+\.\d MB on disk", result.stdout)
    assert len(gguf_hub.downloads_of(GGUF_REPO, GGUF_NAME)) == 1

    # The name it was fetched by is what FALLBACK_MODEL_NAME says: the local tier finds it and answers.
    assert find_local_weights(source, models) == target
    generator = LocalGenerator(
        source, models_dir=models, params=GenerationParams(max_tokens=24, temperature=0)
    )
    assert generator.model == GGUF_NAME
    try:
        answer = asyncio.run(generator.generate(Prompt("Where is the office?", ()), timeout=30))
    finally:
        asyncio.run(generator.aclose())
    assert answer.strip() and generator.status().detail == "loaded (llama.cpp)"

    again = download_models(gguf_hub, tmp_path, "--model", source, "--models-dir", str(models))
    assert again.returncode == 0, again.stderr
    assert len(gguf_hub.downloads_of(GGUF_REPO, GGUF_NAME)) == 1  # already there, checked again


def test_a_corrupted_gguf_download_fails_its_checksum(gguf_hub: FakeHub, tmp_path: Path) -> None:
    source = f"acme/broken-gguf/{GGUF_NAME}"
    result = download_models(gguf_hub, tmp_path, "--model", source, "--models-dir", str(tmp_path / "models"))

    assert result.returncode == 1
    assert f"{source}: FAILED sha256: {GGUF_NAME} does not match" in result.stderr


def test_a_gguf_file_the_repo_lacks_is_one_readable_line(gguf_hub: FakeHub, tmp_path: Path) -> None:
    source = f"{GGUF_REPO}/model-Q8_0.gguf"
    result = download_models(gguf_hub, tmp_path, "--model", source, "--models-dir", str(tmp_path / "models"))

    assert result.returncode == 1 and "Traceback" not in result.stderr
    failures = [line for line in result.stderr.splitlines() if f"{source}: FAILED" in line]
    assert len(failures) == 1, result.stderr
    assert f"has no file model-Q8_0.gguf; its GGUF files: {GGUF_NAME}" in failures[0]


def test_a_gguf_file_that_is_not_one_fails_verification(tmp_path: Path) -> None:
    from agent.models_cli import verify_gguf

    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"<html>rate limited</html>")
    assert verify_gguf(fake, {}) == [
        "gguf: model.gguf does not read (ValueError: model.gguf is not a GGUF file (no GGUF magic number))"
    ]
    assert verify_gguf(smollm2_gguf(), {}) == []


def test_a_local_gguf_file_is_skipped(tmp_path: Path, hub: FakeHub) -> None:
    result = download_models(
        hub, tmp_path, "--model", str(smollm2_gguf()), "--models-dir", str(tmp_path / "m")
    )
    assert result.returncode == 0, result.stderr
    assert f"{smollm2_gguf()}: skipped, a local file rather than a hub id" in result.stdout
