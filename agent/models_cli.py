"""`python -m agent download-models`: fetch local models into MODELS_DIR and check that they are usable.

A hub id (`owner/repo`) fetches a Hugging Face model folder for transformers; `owner/repo/file.gguf` fetches
that one GGUF file for llama.cpp into MODELS_DIR/owner--repo/. Either name then works as FALLBACK_MODEL_NAME.

The service never downloads at run time (it loads with `local_files_only`), so this is the one step that
needs the network: run it on the host or while building the image.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from agent.generators.local import gguf_source, gguf_target, model_slug
from agent.settings import DEFAULT_LOCAL_MODEL, MINIMAL_LOCAL_MODEL, AgentSettings

log = structlog.get_logger(__name__)

# What a causal LM folder needs: config, safetensors weights, tokenizer and chat template files.
ALLOW_PATTERNS = [
    "*.json",
    "*.safetensors",
    "tokenizer*",
    "*.model",
    "*.txt",
    "*.tiktoken",
    "*.jinja",  # transformers 5 saves the chat template beside tokenizer_config.json
    "merges.txt",
    "vocab.*",
]
# Other weight formats would double the download; subfolders hold exports for other runtimes (onnx/, ...)
# that loading the folder never reads.
IGNORE_PATTERNS = ["*/*", "*.bin", "*.pt", "*.pth", "*.onnx", "*.gguf", "*.h5", "*.msgpack"]
_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")  # the hub client honours both
_TRUE = {"1", "on", "yes", "true"}
_MB = 1024 * 1024


@dataclass
class Outcome:
    name: str
    folder: Path
    files: int = 0
    size: int = 0
    problems: list[str] = field(default_factory=list)


def add_parser(sub: Any) -> None:
    download = sub.add_parser(
        "download-models",
        help="download local models into MODELS_DIR and verify them",
        description=__doc__,
    )
    download.set_defaults(run=download_models)
    download.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME",
        help="hub id, or owner/repo/file.gguf for one GGUF file; repeatable (default: configured)",
    )
    download.add_argument(
        "--all", action="store_true", help="the default and the minimal model (and configured)"
    )
    download.add_argument("--models-dir", type=Path, default=None, help="target folder (default: MODELS_DIR)")


def download_models(args: argparse.Namespace) -> int:
    offline = [name for name in _OFFLINE_VARIABLES if os.environ.get(name, "").strip().lower() in _TRUE]
    if offline:
        sys.stderr.write(
            f"error: {' and '.join(offline)} is set, but downloading models needs the network: unset it for "
            "this command (the service itself keeps running offline).\n"
        )
        return 2

    settings = AgentSettings()
    models_dir: Path = args.models_dir or settings.models_dir
    outcomes: list[Outcome] = []
    for name in _wanted(args.model, args.all, settings.local_model_name):
        if Path(name).expanduser().is_dir():  # FALLBACK_MODEL_NAME may name a folder
            sys.stdout.write(f"{name}: skipped, a local folder rather than a hub id\n")
        elif Path(name).expanduser().is_file():  # or a .gguf file
            sys.stdout.write(f"{name}: skipped, a local file rather than a hub id\n")
        else:
            outcomes.append(_fetch(name, models_dir))
    done = [o for o in outcomes if not o.problems]
    files, size = sum(o.files for o in done), sum(o.size for o in done)
    sys.stdout.write(
        f"total: {len(done)} of {len(outcomes)} model(s) ready, {files} files, {size / _MB:.1f} MB on disk\n"
    )
    return 0 if len(done) == len(outcomes) else 1


def _wanted(explicit: list[str], everything: bool, configured: str) -> list[str]:
    names = list(explicit)
    if everything:
        names += [DEFAULT_LOCAL_MODEL, MINIMAL_LOCAL_MODEL]
    if everything or not explicit:
        names.append(configured)
    return list(dict.fromkeys(names))


def _fetch(name: str, models_dir: Path) -> Outcome:
    from huggingface_hub import constants

    gguf, source = gguf_target(name, models_dir), gguf_source(name)
    outcome = Outcome(name, models_dir / model_slug(source[0] if source else name))
    log.info("model_download_started", model=name, folder=str(outcome.folder), hub=constants.ENDPOINT)
    started = time.monotonic()
    try:
        checksums = _download_gguf(name, outcome.folder) if gguf else _download(name, outcome.folder)
    # The hub raises its HTTP client's errors as well as OSError/ValueError; any of them fails this model
    # only, and the operator needs one readable line rather than a traceback.
    except Exception as exc:  # noqa: BLE001
        outcome.problems.append(f"download from {constants.ENDPOINT}: {_describe(exc)}")
    else:
        outcome.problems += verify_gguf(gguf, checksums) if gguf else verify(outcome.folder, checksums)
    log.info(
        "model_download_finished",
        model=name,
        ok=not outcome.problems,
        seconds=round(time.monotonic() - started, 1),
    )
    if outcome.problems:
        for problem in outcome.problems:
            sys.stderr.write(f"{name}: FAILED {problem}\n")
        return outcome
    files = [gguf] if gguf else _model_files(outcome.folder)  # one repo's other GGUF files are not this model
    outcome.files, outcome.size = len(files), sum(p.stat().st_size for p in files)
    sys.stdout.write(
        f"{name}: ok  {outcome.folder}  {outcome.files} files, {outcome.size / _MB:.1f} MB on disk\n"
    )
    return outcome


def _download(name: str, folder: Path) -> dict[str, str]:
    """Download the snapshot; return the sha256 the hub lists for each LFS file, by file name."""
    from huggingface_hub import HfApi, snapshot_download

    info = HfApi().model_info(name, files_metadata=True)
    # Pinned to the commit the checksums describe; files already in `folder` from that commit are kept.
    snapshot_download(
        repo_id=name,
        revision=info.sha,
        local_dir=folder,
        allow_patterns=ALLOW_PATTERNS,
        ignore_patterns=IGNORE_PATTERNS,
    )
    return {s.rfilename: s.lfs.sha256 for s in info.siblings or [] if s.lfs is not None}


def _download_gguf(name: str, folder: Path) -> dict[str, str]:
    """Download one GGUF file of a repository; return the sha256 the hub lists for it, if any."""
    from huggingface_hub import HfApi, hf_hub_download

    source = gguf_source(name)
    assert source is not None
    repo, filename = source
    info = HfApi().model_info(repo, files_metadata=True)
    listed = {s.rfilename: s for s in info.siblings or []}
    if filename not in listed:
        ggufs = sorted(f for f in listed if f.lower().endswith(".gguf"))
        raise FileNotFoundError(
            f"{repo} has no file {filename}" + (f"; its GGUF files: {', '.join(ggufs[:8])}" if ggufs else "")
        )
    hf_hub_download(repo_id=repo, filename=filename, revision=info.sha, local_dir=folder)
    lfs = listed[filename].lfs
    return {filename: lfs.sha256} if lfs is not None else {}


def verify_gguf(path: Path, checksums: dict[str, str]) -> list[str]:
    """What is wrong with a downloaded GGUF file; empty when llama.cpp (or transformers) can load it."""
    from agent.generators.llama_cpp import read_gguf

    # Keyed by the file's path inside its repository, which ends with the file's name.
    expected = next((sha for name, sha in checksums.items() if path.as_posix().endswith(name)), None)
    if expected is not None and _sha256(path) != expected:
        return [f"sha256: {path.name} does not match the hub's checksum; delete it and run again"]
    try:
        info = read_gguf(path)
    except (OSError, ValueError) as exc:
        return [f"gguf: {path.name} does not read ({_describe(exc)})"]
    problems = []
    if not info.parameters:
        problems.append(f"gguf: {path.name} holds no weights")
    if not info.architecture:
        problems.append(f"gguf: {path.name} names no architecture")
    if not problems and info.chat_template is None:
        # Usable, but a base model: it gets a plain prompt and tends to ramble.
        sys.stdout.write(f"{path.name}: note, no chat template (a base model?): answers will be poor\n")
    return problems


def verify(folder: Path, checksums: dict[str, str]) -> list[str]:
    """What is wrong with a downloaded model folder, one line per failed check; empty when usable."""
    from safetensors import SafetensorError, safe_open

    problems: list[str] = []
    try:
        json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        problems.append(f"config: config.json does not parse ({_describe(exc)})")
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        problems.append("weights: no *.safetensors file")
    for path in weights:
        try:
            with safe_open(path, "np") as tensors:
                if not list(tensors.keys()):
                    problems.append(f"safetensors: {path.name} lists no tensors")
        except (OSError, SafetensorError) as exc:
            problems.append(f"safetensors: {path.name} does not open ({_describe(exc)})")
    for filename, expected in sorted(checksums.items()):
        path = folder / filename
        if path.is_file() and _sha256(path) != expected:
            problems.append(f"sha256: {filename} does not match the hub's checksum; delete it and run again")
    try:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    # The tokenizers library raises a bare Exception for a malformed tokenizer.json.
    except Exception as exc:  # noqa: BLE001
        problems.append(f"tokenizer: does not load ({_describe(exc)})")
    return problems


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _model_files(folder: Path) -> list[Path]:
    """The model's files, without the download bookkeeping the hub keeps in `.cache/`."""
    return [p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.relative_to(folder).parts]


def _describe(exc: BaseException) -> str:
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    if isinstance(exc, GatedRepoError):
        return "the repository is gated: accept its terms on the hub and set HF_TOKEN"
    if isinstance(exc, RepositoryNotFoundError):
        return "repository not found on the hub (check the name; private repositories need HF_TOKEN)"
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        return f"the hub answered HTTP {exc.response.status_code}"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else 'no detail'}"
