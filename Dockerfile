# The Slipway GitHub Action's image (`runs.using: docker` in action.yml), and a small
# image to run `slipway` anywhere.
#
# Stages, in this order on purpose:
#   base      the runtime: Debian slim + git + a CA bundle + a non-root user;
#   prebuilt  base + a `slipway` binary taken from the build context (tests, and anyone
#             who builds the binary elsewhere): `docker build --target prebuilt`;
#   builder   compiles slipway from source in the official Rust image;
#   final     base + the compiled binary: the default target, what the Actions runner builds.
# The classic (non-BuildKit) builder builds every stage up to the target, so `prebuilt`
# comes before `builder`: `--target prebuilt` never needs the Rust image. The default
# target needs BuildKit (the default of `docker build` since Docker 23, and so of the
# Actions runner), which builds only the stages `final` depends on.
#
# The runner mounts the workspace at /github/workspace and sets its own working
# directory, so nothing here relies on WORKDIR.

ARG RUNTIME_BASE=debian:bookworm-slim
ARG RUST_IMAGE=rust:1-bookworm

FROM ${RUNTIME_BASE} AS base
# git: deploys fetch commits and read the workspace's HEAD; ca-certificates: HTTPS to
# GitHub and to the Slipway server. Installed only when the base lacks them (a base made
# with debootstrap --include=git,ca-certificates has them and no network is needed).
# safe.directory: the workspace belongs to the runner's user, not to this image's.
# uid 1001 is the `runner` user of GitHub-hosted runners: the files the runner creates
# for the step (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, the workspace) are its own.
RUN set -eu; \
    if ! command -v git >/dev/null 2>&1 || [ ! -s /etc/ssl/certs/ca-certificates.crt ]; then \
        apt-get update; \
        apt-get install -y --no-install-recommends git ca-certificates; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    git config --system --add safe.directory '*'; \
    useradd --uid 1001 --user-group --create-home --shell /usr/sbin/nologin slipway
ENV SLIPWAY_LOG=warn

FROM base AS prebuilt
COPY --chown=root:root slipway /usr/local/bin/slipway
USER slipway
ENTRYPOINT ["/usr/local/bin/slipway", "action"]

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin slipway \
    && strip target/release/slipway

FROM base AS final
COPY --from=builder /src/target/release/slipway /usr/local/bin/slipway
USER slipway
ENTRYPOINT ["/usr/local/bin/slipway", "action"]
