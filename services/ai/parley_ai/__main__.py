"""``python -m parley_ai``."""

from __future__ import annotations

from parley_ai.app import create_app
from parley_ai.settings import AiSettings
from parley_shared.runtime import configure, load_settings, serve


def main() -> None:
    settings = load_settings(AiSettings)
    configure("ai", settings)
    serve(create_app(settings), settings.ai_host, settings.ai_port)


if __name__ == "__main__":
    main()
