"""``python -m parley_conversation``."""

from __future__ import annotations

from parley_conversation.app import create_app
from parley_conversation.settings import ConversationSettings
from parley_shared.runtime import configure, load_settings, serve


def main() -> None:
    settings = load_settings(ConversationSettings)
    configure("conversation", settings)
    serve(create_app(settings), settings.conversation_host, settings.conversation_port)


if __name__ == "__main__":
    main()
