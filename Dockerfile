# syntax=docker/dockerfile:1
#
# One image for every part of pgmcp; the command picks the binary:
#   docker build -t ghcr.io/pgmcp/pgmcp:0.1.0 .
#   docker run --rm ghcr.io/pgmcp/pgmcp:0.1.0 pgmcp-worker --help
#   docker run --rm ghcr.io/pgmcp/pgmcp:0.1.0 pgmcp-gateway --help
#   docker run --rm ghcr.io/pgmcp/pgmcp:0.1.0 pgmcp --help
# Kubernetes sets `command:` to pgmcp-gateway or pgmcp-worker (deploy/kubernetes/).
#
# The runtime image holds the three binaries, glibc, libgcc and CA
# certificates: no shell, no package manager. It runs as uid/gid 65532.
# checkov:skip=CKV_DOCKER_2: one image serves two programs with different health endpoints (HTTP /healthz, gRPC health); the orchestrator probes each (see deploy/kubernetes/base)

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# No system protoc or OpenSSL is needed: protox compiles the proto and TLS is rustls.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p pgmcp -p pgmcp-worker -p pgmcp-gateway --bins \
    && mkdir -p /out \
    && cp target/release/pgmcp target/release/pgmcp-worker target/release/pgmcp-gateway /out/

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="pgmcp" \
      org.opencontainers.image.description="MCP server for PostgreSQL: pgmcp-gateway (MCP) and pgmcp-worker (SQL)" \
      org.opencontainers.image.source="https://github.com/pgmcp/pgmcp" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
# 8080: gateway HTTP (/mcp, /healthz, /readyz); 50051: worker gRPC.
EXPOSE 8080 50051
CMD ["pgmcp", "--help"]
