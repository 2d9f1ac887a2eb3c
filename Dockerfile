# syntax=docker/dockerfile:1
# One multi-stage build for the whole backend. Pick the image with --target:
#   auth | messaging | socket-gateway | media | delivery   one service each
#   tests                                                  builder + Python test clients
# (compose.yaml does this for every service.)

# The toolchain: several dependencies (hummingbird 2.28, swift-configuration,
# swift-prometheus) need swift-tools-version 6.2; development and CI use 6.3.
ARG SWIFT_VERSION=6.3

# ---- builder: compiles the five executables, statically linking the Swift runtime
FROM swift:${SWIFT_VERSION}-bookworm AS builder
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get update -q \
    && apt-get install -y -q --no-install-recommends \
        librabbitmq-dev libhiredis-dev libcurl4-openssl-dev libssl-dev libpq-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so that this layer is reused while only sources change.
# (.dockerignore keeps the local Package.resolved out: versions resolve anew.)
COPY Package.swift ./
RUN swift package resolve
COPY Shared ./Shared
COPY Services ./Services
COPY Tests ./Tests
# /staging/<product>/ gets that executable, any resource bundles and the
# static crash backtracer, so each service image holds only its own binary.
RUN set -eux; \
    products="auth messaging socket-gateway media delivery"; \
    for product in $products; do \
        swift build -c release --static-swift-stdlib --product "$product"; \
    done; \
    bin="$(swift build -c release --show-bin-path)"; \
    for product in $products; do \
        mkdir -p "/staging/$product"; \
        cp "$bin/$product" "/staging/$product/"; \
        find -L "$bin" -maxdepth 1 -name '*.resources' -exec cp -Ra {} "/staging/$product/" \; ; \
        if [ -x /usr/libexec/swift/linux/swift-backtrace-static ]; then \
            cp /usr/libexec/swift/linux/swift-backtrace-static "/staging/$product/"; \
        fi; \
    done

# ---- tests: `swift test` inside the builder, with the Python clients the tests use
# (the packages and pins of scripts/infra.sh's PIP_PACKAGES and scripts/python-constraints.txt)
FROM builder AS tests
COPY scripts/python-constraints.txt ./scripts/python-constraints.txt
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get update -q \
    && apt-get install -y -q --no-install-recommends python3 python3-venv curl postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /src/.run/venv \
    && /src/.run/venv/bin/pip install --quiet --disable-pip-version-check -c scripts/python-constraints.txt \
        "python-socketio[client]" aiohttp websocket-client requests redis msgpack pytest cryptography pika matplotlib
ENV PATH=/src/.run/venv/bin:$PATH
CMD ["sh", "-c", "swift build --build-tests && swift test --skip-build --skip FaultTests && python -m pytest Tests/e2e -q -ra"]

# ---- runtime: the C libraries the services link, curl for health checks
FROM debian:bookworm-slim AS runtime
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get update -q \
    && apt-get install -y -q --no-install-recommends \
        librabbitmq4 libhiredis0.14 libcurl4 libssl3 libpq5 ca-certificates tzdata curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /app --uid 1000 messenger \
    && install -d -o messenger -g messenger /app/data
WORKDIR /app
USER messenger
ENV SWIFT_BACKTRACE=enable=yes,sanitize=yes,threads=all,images=all,interactive=no,swift-backtrace=/app/swift-backtrace-static

# ---- one image per service
FROM runtime AS auth
COPY --from=builder --chown=messenger /staging/auth/ /app/
ENTRYPOINT ["/app/auth"]

FROM runtime AS messaging
COPY --from=builder --chown=messenger /staging/messaging/ /app/
ENTRYPOINT ["/app/messaging"]

FROM runtime AS socket-gateway
COPY --from=builder --chown=messenger /staging/socket-gateway/ /app/
EXPOSE 5000
ENTRYPOINT ["/app/socket-gateway"]

FROM runtime AS media
COPY --from=builder --chown=messenger /staging/media/ /app/
ENTRYPOINT ["/app/media"]

FROM runtime AS delivery
COPY --from=builder --chown=messenger /staging/delivery/ /app/
ENTRYPOINT ["/app/delivery"]
