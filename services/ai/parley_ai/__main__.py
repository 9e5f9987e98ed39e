"""``python -m parley_ai``."""

from __future__ import annotations

import uvicorn

from parley_ai.app import create_app
from parley_ai.settings import AiSettings
from parley_shared.runtime import access_log, configure, load_settings


def main() -> None:
    settings = load_settings(AiSettings)
    configure("ai", settings)
    uvicorn.run(
        create_app(settings), access_log=access_log(), host=settings.ai_host, port=settings.ai_port
    )


if __name__ == "__main__":
    main()
