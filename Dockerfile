# The Driftline image: the `driftline` command and nothing else.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY producers producers
COPY stream_processors stream_processors
COPY detectors detectors
RUN pip install --no-cache-dir . && useradd --create-home driftline
USER driftline
ENTRYPOINT ["driftline"]
CMD ["--help"]
