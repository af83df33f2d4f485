# syntax=docker/dockerfile:1
#
# The cloudkit-runner image: a static (musl) binary on distroless, running as 65532.
#
#   docker build -t ghcr.io/cloudkit/cloudkit-runner:0.1.0 .
#
# Not built by the tests: the development machine has no container engine. The Deployment
# in manifests/ expects what this produces: /cloudkit-runner as the entrypoint, UID/GID
# 65532, nothing written to the root filesystem.

# Build: Alpine's Rust targets musl, whose binaries are static by default. gcc and musl-dev
# are for ring (rustls' crypto), which compiles C and assembly.
FROM docker.io/library/rust:1.95-alpine AS build
RUN apk add --no-cache gcc musl-dev
WORKDIR /src
# The whole workspace: cargo needs every member's manifest to resolve, even for -p.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p cloudkit-runner \
 && cp target/release/cloudkit-runner /cloudkit-runner

# Run: no shell, no package manager; CA certificates for AAP over HTTPS are included.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /cloudkit-runner /cloudkit-runner
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/cloudkit-runner"]
