"""Typed access to what the lifespan built (read from the app's state, so routers need no app to exist)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from api.budget import Budget
from api.chat import ChatService
from api.schemas import SESSION_ID_PATTERN
from api.services import Services
from api.settings import Settings


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_chat(request: Request) -> ChatService:
    chat: ChatService = request.app.state.chat
    return chat


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_budget(request: Request) -> Budget:
    return Budget(request)


ServicesDep = Annotated[Services, Depends(get_services)]
ChatDep = Annotated[ChatService, Depends(get_chat)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
BudgetDep = Annotated[Budget, Depends(get_budget)]
SessionId = Annotated[str, Path(pattern=SESSION_ID_PATTERN, description="The conversation's id.")]
