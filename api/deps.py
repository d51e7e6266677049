"""Typed access to the lifespan-built services."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from api.schemas import SESSION_ID_PATTERN
from api.services import Services


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
SessionId = Annotated[str, Path(pattern=SESSION_ID_PATTERN, description="The conversation's id.")]
