"""The lock files pin what pyproject.toml asks for, each package with its hashes and one version in all three;
torch is the CPU build, with no CUDA package. A dependency added to pyproject.toml without `make lock` fails
here rather than on a fresh machine."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LOCKS = {"base": "requirements.lock", "llama": "requirements-llama.lock", "dev": "requirements-dev.lock"}
# Each lock file holds the one before it and its own extra.
ASKS = {
    "base": PYPROJECT["dependencies"],
    "llama": PYPROJECT["dependencies"] + PYPROJECT["optional-dependencies"]["llama"],
    "dev": PYPROJECT["dependencies"]
    + PYPROJECT["optional-dependencies"]["llama"]
    + PYPROJECT["optional-dependencies"]["dev"],
}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def pins(name: str) -> dict[str, tuple[Version, int]]:
    """Package -> (version, number of hashes), from a pip-compile file."""
    found: dict[str, tuple[Version, int]] = {}
    current = ""
    for line in (ROOT / name).read_text().splitlines():
        if match := _PIN.match(line):
            current = canonicalize_name(match[1])
            found[current] = (Version(match[2]), 0)
        elif line.strip().startswith("--hash=sha256:") and current:
            version, hashes = found[current]
            found[current] = (version, hashes + 1)
        elif line and not line.startswith((" ", "#")):
            raise AssertionError(f"{name}: not a pin: {line!r}")
    return found


@pytest.mark.parametrize("which", LOCKS)
def test_every_dependency_is_pinned_with_hashes(which: str) -> None:
    locked = pins(LOCKS[which])
    assert locked and all(hashes for _, hashes in locked.values()), "every pin needs its hashes"
    for ask in map(Requirement, ASKS[which]):
        name = canonicalize_name(ask.name)
        assert name in locked, f"{ask} is not in {LOCKS[which]}: run `make lock`"
        assert ask.specifier.contains(locked[name][0], prereleases=True), f"{LOCKS[which]} pins {ask} out"


def test_a_package_has_one_version_in_every_lock_file() -> None:
    base, llama, dev = (pins(name) for name in LOCKS.values())
    for name, (version, _) in base.items():
        assert llama[name][0] == version == dev[name][0], name
    for name, (version, _) in llama.items():
        assert dev[name][0] == version, name


def test_torch_is_the_cpu_build_the_makefile_names() -> None:
    spec = re.search(r"^TORCH_SPEC\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert spec is not None
    wanted = Requirement(spec[1])
    for name in LOCKS.values():
        locked = pins(name)
        assert str(locked["torch"][0]) in {str(s.version) for s in wanted.specifier}, name
        assert locked["torch"][0].local == "cpu", name
        cuda = [p for p in locked if p.startswith(("nvidia-", "triton", "cuda-"))]
        assert not cuda, f"{name} pulls CUDA packages: {cuda}"
