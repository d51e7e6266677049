"""The error responses the routes document in the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from api.schemas import ErrorBody, ValidationErrorBody

Responses = dict[int | str, dict[str, Any]]

RATE_LIMITED: Responses = {429: {"model": ErrorBody, "description": "Rate limit exceeded"}}
VISITOR_ERRORS: Responses = {
    400: {"model": ErrorBody, "description": "The body could not be read (not UTF-8 JSON)"},
    403: {"model": ErrorBody, "description": "The page's origin is not in ALLOWED_ORIGINS"},
    413: {"model": ErrorBody, "description": "Request body too large"},
    422: {"model": ValidationErrorBody, "description": "Invalid request"},
}
