"""`python -m api`: serve on HOST:PORT."""

from __future__ import annotations

import uvicorn

from api.app import create_app
from api.settings import Settings


def main() -> None:
    settings = Settings()
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.api.host,
        port=settings.api.port,
        log_config=None,  # our structlog set-up renders uvicorn's records too
        # uvicorn would believe X-Forwarded-For from 127.0.0.1 by default; the app applies TRUSTED_PROXIES.
        proxy_headers=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
