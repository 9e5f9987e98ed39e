"""``python -m parley_analytics`` serves; with ``migrate`` it migrates its tables and exits."""

from __future__ import annotations

import sys

from parley_analytics import tables
from parley_analytics.app import create_app
from parley_analytics.settings import AnalyticsSettings
from parley_shared.runtime import configure, load_settings, migrate_tables, serve


def main() -> None:
    settings = load_settings(AnalyticsSettings)
    configure("analytics", settings)
    if sys.argv[1:] == ["migrate"]:
        migrate_tables("analytics", settings, tables.MIGRATIONS)
        return
    serve(create_app(settings), settings.analytics_host, settings.analytics_port)


if __name__ == "__main__":
    main()
