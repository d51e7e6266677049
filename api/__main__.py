"""`python -m api`: serve on HOST:PORT."""

from __future__ import annotations

import uvicorn

from api.app import create_app
from api.settings import Settings


def main() -> None:
    settings = Settings()
    app = create_app(settings)
    forwarded = settings.api.forwarded_allow_ips
    uvicorn.run(
        app,
        host=settings.api.host,
        port=settings.api.port,
        log_config=None,  # our structlog set-up renders uvicorn's records too
        proxy_headers=bool(forwarded),
        forwarded_allow_ips=forwarded or None,
        server_header=False,
    )


if __name__ == "__main__":
    main()
