# syntax=docker/dockerfile:1
# bug-escape-exporter container image.
#
#   docker build -t bug-escape-exporter .
#   docker run -d --name bug-escape-exporter -p 10941:10941 \
#     -v bug-escape-data:/data -e BUG_ESCAPE_API_TOKEN=... bug-escape-exporter
#
# Pass the revision for --version and bug_escape_build_info (the context has
# no .git): --build-arg BUG_ESCAPE_REVISION=$(git rev-parse HEAD), and
# --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) for a reproducible
# build date. deploy/check.sh lints this file and checks its build context.

ARG RUST_VERSION=1

# --- build -------------------------------------------------------------------
# The full Debian image: rusqlite's bundled SQLite needs a C compiler.
FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /build
# Only what the build needs (.dockerignore lets nothing else in).
COPY Cargo.toml Cargo.lock build.rs ./
COPY src/ src/
COPY benches/ benches/
ARG BUG_ESCAPE_REVISION=
ARG SOURCE_DATE_EPOCH=
# The registry and target directory are BuildKit caches: a rebuild after a
# source change recompiles the crate only. The binary is copied out of the
# cache mount, which is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked \
    && install -D -m 0755 target/release/bug-escape-exporter /out/bug-escape-exporter \
    && install -d -m 0750 /out/data

# --- run ---------------------------------------------------------------------
# glibc and libgcc only (TLS is rustls, SQLite is compiled in); no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="bug-escape-exporter" \
      org.opencontainers.image.description="Prometheus exporter of the bug escape rate" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/bug-escape-exporter /usr/local/bin/bug-escape-exporter
# The database volume, owned by the exporter's user so a new named volume
# starts writable.
COPY --from=builder --chown=10001:10001 /out/data /data
USER 10001:10001
WORKDIR /data
ENV BUG_ESCAPE_DB=/data/bug-escape.db \
    BUG_ESCAPE_LISTEN=0.0.0.0:10941
VOLUME ["/data"]
EXPOSE 10941
# The binary asks its own /readyz (no curl in the image). Listening elsewhere?
# Set BUG_ESCAPE_HEALTHCHECK_URL to match BUG_ESCAPE_LISTEN.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/bug-escape-exporter", "healthcheck", "--timeout", "3s"]
ENTRYPOINT ["/usr/local/bin/bug-escape-exporter"]
CMD ["serve"]
