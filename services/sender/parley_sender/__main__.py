"""``python -m parley_sender``."""

from __future__ import annotations

from parley_sender.app import create_app
from parley_sender.settings import SenderSettings
from parley_shared.runtime import configure, load_settings, serve


def main() -> None:
    settings = load_settings(SenderSettings)
    configure("sender", settings)
    serve(create_app(settings), settings.sender_host, settings.sender_port)


if __name__ == "__main__":
    main()
