"""Builds a real, tiny GPT-2 (tokenizer trained here, random weights) and saves it to a folder."""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_tiny_gpt2(folder: Path, *, chat_template: bool, never_stops: bool = False) -> Path:
    """`never_stops` saves a generation config that suppresses end-of-text: every answer runs to the token
    limit, which makes a generation's duration predictable."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    corpus = [
        "Northwind Digital builds websites, mobile apps and online shops in Bristol.",
        "Our support line is open Monday to Friday. Prices start at four thousand pounds.",
        "The visitor asked a question and the assistant answered it from the documents.",
    ] * 20
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus, vocab_size=400, min_frequency=1, special_tokens=["<|endoftext|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")  # type: ignore[no-untyped-call]
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=512,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    import torch

    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    if never_stops:
        model.generation_config.suppress_tokens = [tokenizer.eos_token_id]
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder
