"""Generator tiers: one module each, all implementing `agent.generators.base.Generator`."""
