"""``python -m parley_conversation`` serves; with ``migrate`` it migrates its tables and exits."""

from __future__ import annotations

import sys

from parley_conversation import tables
from parley_conversation.app import create_app
from parley_conversation.settings import ConversationSettings
from parley_shared.runtime import configure, load_settings, migrate_tables, serve


def main() -> None:
    settings = load_settings(ConversationSettings)
    configure("conversation", settings)
    if sys.argv[1:] == ["migrate"]:
        migrate_tables("conversation", settings, tables.MIGRATIONS)
        return
    serve(create_app(settings), settings.conversation_host, settings.conversation_port)


if __name__ == "__main__":
    main()
