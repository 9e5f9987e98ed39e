"""``python -m parley_conversation``."""

from __future__ import annotations

import uvicorn

from parley_conversation.app import create_app
from parley_conversation.settings import ConversationSettings
from parley_shared.runtime import access_log, configure, load_settings


def main() -> None:
    settings = load_settings(ConversationSettings)
    configure("conversation", settings)
    uvicorn.run(
        create_app(settings),
        access_log=access_log(),
        host=settings.conversation_host,
        port=settings.conversation_port,
    )


if __name__ == "__main__":
    main()
