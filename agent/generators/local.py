"""A local Hugging Face causal LM, loaded once on first need and only from files already on disk."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

from agent.errors import FallThroughError, TierUnavailable
from agent.generators.base import TierStatus
from agent.prompting import Prompt

log = structlog.get_logger(__name__)

# Base models keep writing new "turns" after answering; cut the reply where one starts.
_STOP_MARKERS = ("\nQuestion:", "\nVisitor's question:", "\n\n\n", "<documents>", "\nUser:")


def find_local_weights(name: str) -> Path | None:
    """The model folder if its weights are on this disk (a folder, or the Hugging Face cache)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path if (path / "config.json").is_file() else None
    if name.count("/") != 1:
        return None
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(name, "config.json")
    return Path(config).parent if isinstance(config, str) else None


class LocalGenerator:
    provider = "local"

    def __init__(self, model_name: str, *, max_tokens: int = 256, temperature: float = 0.3) -> None:
        self.model = model_name
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._loaded: tuple[Any, Any] | None = None
        self._weights: Path | None = None
        self._located = False
        self._load_error: str | None = None
        # CPU generation runs one at a time, and loading happens on the same thread: no lock needed.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-llm")

    def status(self) -> TierStatus:
        if self._loaded is not None:
            return TierStatus("ready")
        if self._load_error:
            return TierStatus("unavailable", self._load_error)
        if self._locate() is None:
            return TierStatus("unavailable", "weights not on disk")
        return TierStatus("idle", "loads on first use")

    def _locate(self) -> Path | None:
        """Looked up once: adding weights later takes a restart, which also frees the old ones."""
        if not self._located:
            self._weights = find_local_weights(self.model)
            self._located = True
            if self._weights is None:
                log.warning(
                    "local_model_skipped",
                    model=self.model,
                    reason="weights not on disk (FALLBACK_MODEL_NAME); the local tier is skipped",
                )
        return self._weights

    async def generate(self, prompt: Prompt) -> str:
        if self._locate() is None:
            raise TierUnavailable(f"local model {self.model} is not on disk")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._generate_blocking, prompt)

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is not None:
            return self._loaded
        if self._load_error:
            raise TierUnavailable(self._load_error)
        path = self._locate()
        assert path is not None
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        log.info("local_model_loading", model=self.model)
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                str(path), local_files_only=True, low_cpu_mem_usage=True
            )
        except (OSError, ValueError, RuntimeError) as exc:
            self._load_error = f"failed to load: {type(exc).__name__}"
            log.error("local_model_load_failed", model=self.model, error=str(exc))
            raise TierUnavailable(self._load_error) from exc
        model.eval()  # type: ignore[no-untyped-call]
        self._loaded = (tokenizer, model)
        log.info("local_model_ready", model=self.model)
        return self._loaded

    def _generate_blocking(self, prompt: Prompt) -> str:
        import torch

        tokenizer, model = self._load()
        window = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
        max_new = min(self._max_tokens, window // 2)
        inputs = self._encode(tokenizer, prompt, limit=window - max_new)
        prompt_len = inputs["input_ids"].shape[-1]
        eos = tokenizer.eos_token_id
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": self._temperature, "top_p": 0.9}
            if self._temperature > 0
            else {"do_sample": False}
        )
        with torch.inference_mode():
            output = model.generate(
                **inputs,
                max_new_tokens=max_new,
                pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos,
                eos_token_id=eos,
                repetition_penalty=1.1,
                **sampling,
            )
        text = tokenizer.decode(output[0][prompt_len:], skip_special_tokens=True)
        answer = _cut_at_stop(text).strip()
        if not answer:
            raise FallThroughError("local model produced no text")
        return answer

    @staticmethod
    def _encode(tokenizer: Any, prompt: Prompt, limit: int) -> dict[str, Any]:
        """Chat template when the tokenizer has one, a plain prompt otherwise; fit `limit` tokens."""
        passages = prompt.passages
        while True:
            current = Prompt(prompt.question, passages, prompt.system)
            if getattr(tokenizer, "chat_template", None):
                messages = [
                    {"role": "system", "content": current.system},
                    {"role": "user", "content": current.user_message()},
                ]
                encoded = tokenizer.apply_chat_template(
                    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
                )
            else:
                encoded = tokenizer(current.plain_text(), return_tensors="pt")
            if encoded["input_ids"].shape[-1] <= limit or not passages:
                break
            passages = passages[:-1]  # drop the least relevant passage until it fits
        if encoded["input_ids"].shape[-1] > limit:
            encoded = {k: v[:, -limit:] for k, v in encoded.items()}
        return dict(encoded)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _cut_at_stop(text: str) -> str:
    cut = len(text)
    for marker in _STOP_MARKERS:
        index = text.find(marker)
        if index != -1:
            cut = min(cut, index)
    return text[:cut]
