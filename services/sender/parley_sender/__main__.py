"""``python -m parley_sender`` serves; with ``migrate`` it migrates its tables and exits."""

from __future__ import annotations

import sys

from parley_sender import tables
from parley_sender.app import create_app
from parley_sender.settings import SenderSettings
from parley_shared.runtime import configure, load_settings, migrate_tables, serve


def main() -> None:
    settings = load_settings(SenderSettings)
    configure("sender", settings)
    if sys.argv[1:] == ["migrate"]:
        migrate_tables("sender", settings, tables.MIGRATIONS)
        return
    serve(create_app(settings), settings.sender_host, settings.sender_port)


if __name__ == "__main__":
    main()
