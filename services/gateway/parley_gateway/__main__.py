"""``python -m parley_gateway``: serve the gateway with uvicorn."""

from __future__ import annotations

from parley_gateway.app import create_app
from parley_gateway.settings import GatewaySettings
from parley_shared.runtime import configure, load_settings, serve


def main() -> None:
    settings = load_settings(GatewaySettings)
    configure("gateway", settings)
    serve(
        create_app(settings),
        settings.gateway_host,
        settings.gateway_port,
        proxy_headers=True,
        forwarded_allow_ips="*",
    )


if __name__ == "__main__":
    main()
