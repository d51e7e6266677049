"""Leads and their outbox of deliveries.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agent.records.tables import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leads",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("consent_at", UTCDateTime(), nullable=False),
        sa.Column("conversation", sa.String(64), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
    )
    op.create_index("ix_leads_created_at", "leads", ["created_at"])
    op.create_table(
        "lead_deliveries",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("lead_id", sa.String(32), sa.ForeignKey("leads.id", ondelete="CASCADE"), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("target", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_lead_deliveries_due", "lead_deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_lead_deliveries_lead", "lead_deliveries", ["lead_id"])


def downgrade() -> None:
    op.drop_index("ix_lead_deliveries_lead", table_name="lead_deliveries")
    op.drop_index("ix_lead_deliveries_due", table_name="lead_deliveries")
    op.drop_table("lead_deliveries")
    op.drop_index("ix_leads_created_at", table_name="leads")
    op.drop_table("leads")
