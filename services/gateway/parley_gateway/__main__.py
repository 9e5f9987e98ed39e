"""``python -m parley_gateway``: serve the gateway with uvicorn."""

from __future__ import annotations

import uvicorn

from parley_gateway.app import create_app
from parley_gateway.settings import GatewaySettings
from parley_shared.runtime import access_log, configure, load_settings


def main() -> None:
    settings = load_settings(GatewaySettings)
    configure("gateway", settings)
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_level="info",
        access_log=access_log(),
        proxy_headers=True,
        forwarded_allow_ips="*",
    )


if __name__ == "__main__":
    main()
