# syntax=docker/dockerfile:1
#
# One image for every role: the tap beside each router, the replay cache,
# the warmer beside each new sync pod and the load-test Job
# (deploy/kubernetes). A static binary on scratch: no shell, no package
# manager, nothing but preheat and the CA certificates it verifies TLS and
# AWS endpoints with, run as a non-root numeric user.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t preheat .
#
# Without a Docker engine, `make image` (tools/image/build.sh) builds this
# same file with buildah, the binary compiled by the local Go toolchain.

# The build stage's base. Its ca-certificates package is what the image ships.
ARG GO_IMAGE=golang:1.26-bookworm
# Where the final stage takes /out from: the build stage below, or an image
# holding the same /out tree made elsewhere (tools/image/build.sh).
ARG ARTIFACTS=build

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
# -buildvcs stamps the commit from .git into the binary (preheat version
# prints it); -trimpath keeps the build machine's paths out of it.
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=auto \
      -ldflags "-s -w -X main.version=${VERSION}" -o /out/preheat ./cmd/preheat \
 && mkdir -p /out/etc/ssl/certs \
 && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ca-certificates.crt

FROM ${ARTIFACTS} AS artifacts

FROM scratch
ARG VERSION=devel
ARG REVISION=unknown
COPY --from=artifacts /out/etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=artifacts /out/preheat /preheat
# Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
ENTRYPOINT ["/preheat"]
LABEL org.opencontainers.image.title="preheat" \
      org.opencontainers.image.description="Warms cold websocket backends by replaying recently captured sessions" \
      org.opencontainers.image.source="https://github.com/preheatdev/preheat" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
