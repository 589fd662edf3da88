# hydromon, CPU image (docs/deploy.md; the CUDA variant is described there).
#   docker build -t hydromon .      docker compose up -d      (compose.yaml: with Redis)
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/var/cache/hydromon/huggingface \
    HF_HUB_OFFLINE=1

RUN useradd --system --home-dir /var/lib/hydromon --shell /usr/sbin/nologin hydromon \
    && install -d -o hydromon -g hydromon -m 0750 /var/lib/hydromon /var/cache/hydromon

WORKDIR /opt/hydromon
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY models ./models
COPY training ./training
COPY config ./config
COPY deploy/hydromon.toml /etc/hydromon/hydromon.toml
# The CPU-only torch wheels first (the PyPI ones pull in gigabytes of CUDA libraries), then
# hydromon with the MQTT and notification extras, as the README installs it.
RUN pip install --index-url https://download.pytorch.org/whl/cpu 'torch==2.9.*' 'torchaudio==2.9.*' \
    && pip install '.[mqtt,notify]'

USER hydromon
WORKDIR /var/lib/hydromon
VOLUME ["/var/lib/hydromon", "/var/cache/hydromon"]
EXPOSE 8765 9108
# The daemon's graceful stop; give it `stop_grace_period: 45s` (compose) / `--time 45`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["hydromon"]
CMD ["run", "--config", "/etc/hydromon/hydromon.toml"]
