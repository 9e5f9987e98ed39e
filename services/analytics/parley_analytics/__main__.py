"""``python -m parley_analytics``."""

from __future__ import annotations

import uvicorn

from parley_analytics.app import create_app
from parley_analytics.settings import AnalyticsSettings
from parley_shared.runtime import access_log, configure, load_settings


def main() -> None:
    settings = load_settings(AnalyticsSettings)
    configure("analytics", settings)
    uvicorn.run(
        create_app(settings),
        access_log=access_log(),
        host=settings.analytics_host,
        port=settings.analytics_port,
    )


if __name__ == "__main__":
    main()
