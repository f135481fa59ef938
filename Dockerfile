# NeuroGraph API image: GraphQL, REST and the web UI over Neo4j (see docker-compose.yml).
# No compute extra: the API never imports torch or transformer-lens, so the image stays small.
#
#   docker build -t neurograph .
#   docker run -p 8000:8000 -e NEO4J_URI=bolt://neo4j:7687 -e NEO4J_PASSWORD=... neurograph
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NEUROGRAPH_ENGINE=neo4j \
    NEO4J_URI=bolt://neo4j:7687 \
    NEUROGRAPH_DATA_DIR=/data

WORKDIR /app

# Dependencies first, in their own layer: code edits do not reinstall them.
# The install is editable because the package reads cypher/ and web/ beside its source tree.
COPY pyproject.toml README.md ./
RUN mkdir -p neurograph loaders \
 && touch neurograph/__init__.py loaders/__init__.py \
 && pip install -e . \
 && rm -rf neurograph loaders

COPY neurograph/ neurograph/
COPY loaders/ loaders/
COPY cypher/ cypher/
COPY graphql/ graphql/
COPY web/ web/

# An unprivileged user; /data is only used if the engine is switched to embedded FalkorDB.
RUN useradd --create-home --uid 10001 neurograph \
 && mkdir -p /data && chown neurograph /data
USER neurograph

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=5 \
  CMD python -c "import urllib.request, sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"

CMD ["neurograph", "serve", "--host", "0.0.0.0", "--port", "8000"]
