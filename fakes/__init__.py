"""Fakes over the real protocols, served on 127.0.0.1: LLM APIs (Gemini, OpenAI chat completions), a Hugging
Face Hub, and a tiny real GPT-2. Tests and benchmarks both use them, so they live here rather than in
`tests/`, which benchmarks must not import."""
