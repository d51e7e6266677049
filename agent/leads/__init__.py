"""Visitors who ask for a person: their contact requests, stored with the conversation, and delivered to
the site owner through an outbox (a signed webhook and/or e-mail) that survives restarts and receivers that
are down."""
