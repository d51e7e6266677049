"""The local-tier benchmark runs end to end on a tiny model and prints every figure."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def test_fallback_benchmark_measures_the_tiny_model() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.fallback", "--tiny", "--tokens", "8"],
        cwd=ROOT,
        env={**os.environ, "FALLBACK_MODEL_NAME": "nobody/not-on-disk", "MINIMAL_RESOURCES": "false"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    figures = dict(
        line.split(" = ") for line in result.stdout.splitlines() if line.startswith("fallback.tiny-gpt2.")
    )
    assert set(figures) == {
        f"fallback.tiny-gpt2.{name}"
        for name in (
            "load_s",
            "peak_rss_mb",
            "model_rss_mb",
            "response_s",
            "tokens_per_s",
            "tokens_per_answer",
        )
    }
    assert float(figures["fallback.tiny-gpt2.tokens_per_answer"]) == 8.0  # the model never stops early
    assert float(figures["fallback.tiny-gpt2.tokens_per_s"]) > 0
    assert "| tiny-gpt2 |" in result.stdout
