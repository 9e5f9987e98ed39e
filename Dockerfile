# One image for every Parley service; the command picks the service (python -m parley_<name>).
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
COPY pyproject.toml uv.lock ./
COPY shared ./shared
COPY services ./services
COPY devtools ./devtools
RUN uv sync --frozen --all-packages --no-dev

FROM python:3.11-slim
RUN useradd --system --uid 10001 parley
WORKDIR /app
COPY --from=build /app /app
ENV PATH="/app/.venv/bin:$PATH" PYTHONUNBUFFERED=1
USER parley
CMD ["python", "-m", "parley_gateway"]
