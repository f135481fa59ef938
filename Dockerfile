# NeuroGraph API image: GraphQL, REST and the web UI over Neo4j (see docker-compose.yml).
# No compute extra: the API never imports torch or transformer-lens, so the image stays small.
#
#   docker build -t neurograph .
#   docker run -p 8000:8000 -e NEO4J_URI=bolt://neo4j:7687 -e NEO4J_PASSWORD=... neurograph

# The wheel: the package plus cypher/, graphql/ and web/ as its data (setup.py copies them in).
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY neurograph/ neurograph/
COPY loaders/ loaders/
COPY cypher/ cypher/
COPY graphql/ graphql/
COPY web/ web/
RUN pip wheel --no-cache-dir --no-deps -w /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NEUROGRAPH_ENGINE=neo4j \
    NEO4J_URI=bolt://neo4j:7687 \
    NEUROGRAPH_DATA_DIR=/data

# Dependencies first, at the locked versions and in their own layer: code edits do not
# reinstall them. Then the wheel itself (a real install: nothing is read from a source tree).
COPY requirements/api.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY --from=wheel /wheels/ /tmp/wheels/
RUN pip install --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels

# An unprivileged user; /data is only used if the engine is switched to embedded FalkorDB.
RUN useradd --create-home --uid 10001 neurograph \
 && mkdir -p /data && chown neurograph /data
USER neurograph
WORKDIR /home/neurograph

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=5 \
  CMD python -c "import urllib.request, sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"

CMD ["neurograph", "serve", "--host", "0.0.0.0", "--port", "8000"]
