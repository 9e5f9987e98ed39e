"""``python -m parley_ai`` serves; with ``migrate`` it migrates its tables and exits."""

from __future__ import annotations

import sys

from parley_ai import tables
from parley_ai.app import create_app
from parley_ai.settings import AiSettings
from parley_shared.runtime import configure, load_settings, migrate_tables, serve


def main() -> None:
    settings = load_settings(AiSettings)
    configure("ai", settings)
    if sys.argv[1:] == ["migrate"]:
        migrate_tables("ai", settings, tables.MIGRATIONS)
        return
    serve(create_app(settings), settings.ai_host, settings.ai_port)


if __name__ == "__main__":
    main()
