"""``python -m parley_sender``."""

from __future__ import annotations

import uvicorn

from parley_sender.app import create_app
from parley_sender.settings import SenderSettings
from parley_shared.runtime import access_log, configure, load_settings


def main() -> None:
    settings = load_settings(SenderSettings)
    configure("sender", settings)
    uvicorn.run(
        create_app(settings),
        access_log=access_log(),
        host=settings.sender_host,
        port=settings.sender_port,
    )


if __name__ == "__main__":
    main()
