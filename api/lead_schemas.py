"""Bodies of the contact-request endpoints: `POST /leads` (visitors) and `/admin/leads` (the owner)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator, model_validator

from api.schemas import SESSION_ID_PATTERN, clean_text, no_lone_surrogates

LEAD_ID_PATTERN = r"^[0-9a-f]{32}$"


class LeadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="How the visitor wants to be addressed.")
    email: EmailStr = Field(max_length=320, description="Where the owner answers; checked as an address.")
    message: str = Field(min_length=1, max_length=4000, description="What the visitor needs.")
    consent: bool = Field(
        description="The visitor agreed that the details are stored and used to contact them; must be true."
    )
    session_id: str | None = Field(
        default=None,
        pattern=SESSION_ID_PATTERN,
        description="The widget's conversation id: the conversation so far goes with the request.",
    )

    _valid_unicode = model_validator(mode="before")(no_lone_surrogates)

    @field_validator("name", "message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = clean_text(value).strip()
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("name")
    @classmethod
    def _one_line(cls, value: str) -> str:
        # It becomes an e-mail's subject and display name: no line breaks to smuggle headers with.
        return " ".join(value.split())

    @field_validator("consent")
    @classmethod
    def _given(cls, value: bool) -> bool:
        if not value:
            raise ValueError("consent is needed to store the details and contact you")
        return value


class LeadReceived(BaseModel):
    lead_id: str
    status: Literal["received"] = "received"
    delivery: list[Literal["webhook", "email"]] = Field(
        description="Where the request goes beyond /admin: the webhook and/or e-mail, as configured."
    )


class DeliveryOut(BaseModel):
    channel: Literal["webhook", "email"]
    target: str = Field(description="The webhook's address (no query) or the e-mail recipients.")
    status: Literal["pending", "delivered", "failed"] = Field(
        description="pending: waiting for its (next) attempt; failed: given up after LEAD_GIVE_UP_HOURS "
        "(POST /admin/leads/{id}/retry tries again)."
    )
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None


class LeadOut(BaseModel):
    id: str
    created_at: datetime
    name: str
    email: str
    message: str
    conversation: str | None = Field(description="Opens with GET /admin/conversations/{id}.")
    deliveries: list[DeliveryOut]


class LeadsOut(BaseModel):
    total: int
    page: int
    per_page: int
    leads: list[LeadOut]


class LeadRetried(BaseModel):
    lead_id: str
    status: Literal["retrying"] = "retrying"
