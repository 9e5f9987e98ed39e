"""``python -m parley_analytics``."""

from __future__ import annotations

from parley_analytics.app import create_app
from parley_analytics.settings import AnalyticsSettings
from parley_shared.runtime import configure, load_settings, serve


def main() -> None:
    settings = load_settings(AnalyticsSettings)
    configure("analytics", settings)
    serve(create_app(settings), settings.analytics_host, settings.analytics_port)


if __name__ == "__main__":
    main()
