"""The answering brain: prompts, generator tiers, retries and the fallback chain. No HTTP here."""
