# Golden Path: slim, non-root, served by uvicorn (the connexion app is ASGI).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY backend ./backend
COPY scaffolder_actions ./scaffolder_actions
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT=7070 \
    GOLDENPATH_REPOSITORIES__SKELETONS_DIR=/app/catalog-info/templates
RUN useradd --system --uid 10001 --home-dir /app goldenpath
WORKDIR /app
COPY --from=build /install /usr/local
COPY openapi ./openapi
COPY catalog-info ./catalog-info
RUN mkdir -p /app/var && chown goldenpath /app/var
USER 10001
EXPOSE 7070
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD python -c "import os,urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/api/v1/healthz', timeout=2)"
# Configuration comes from GOLDENPATH_CONFIG / env (VAULT_ADDR, GOLDENPATH_DATABASE_URL, GOLDENPATH_TOKEN, ...).
# --http: uvicorn's h11 protocol with our reason phrases, so Backstage's task log shows Golden Path's message.
# The schema is upgraded first, under a database lock (replicas starting together take turns); serving refuses a
# schema that is behind. On Kubernetes the migration Job does it and the Deployment runs uvicorn alone
# (deploy/kubernetes/), so the serving role needs no DDL rights.
CMD ["sh", "-c", "goldenpath db upgrade && exec uvicorn --factory backend.app:app_from_env --http backend.api.reason_phrase:ReasonPhraseH11Protocol --host 0.0.0.0 --port ${PORT} --workers 2 --no-access-log"]
