"""The README documents every setting, with its real default."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic_settings import BaseSettings

from agent.records.settings import RecordsSettings
from agent.settings import AgentSettings
from api.settings import ApiSettings
from rag.logs import LoggingSettings
from rag.settings import RagSettings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
ROWS = dict(re.findall(r"^\| `([A-Z_]+)` \| ([^|]*) \|", README, flags=re.MULTILINE))


def test_every_setting_is_in_the_readme_with_its_default() -> None:
    models: list[type[BaseSettings]] = [
        ApiSettings,
        AgentSettings,
        RagSettings,
        LoggingSettings,
        RecordsSettings,
    ]
    for model in models:
        for name, field in model.model_fields.items():
            documented = ROWS.get(name.upper())
            assert documented is not None, f"{name.upper()} is missing from the README table"
            default = field.default
            if default is None:
                assert documented.strip() == "unset", name
            elif default == "":
                assert documented.strip() == "empty", name
            else:
                if isinstance(default, bool):
                    shown = str(default).lower()
                elif isinstance(default, list):
                    shown = ",".join(default)  # as the environment gives it
                else:
                    shown = str(default)
                assert documented.strip().strip("`") in {shown, shown.removesuffix(".0")}, (name, documented)
