# Multi-stage build: a static broker binary on a minimal base, running as a non-root user.
# No Docker engine runs on the project's build machines, so this file is kept plain and is not
# exercised in CI; build it with `docker build -t warren .` where Docker is available.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/warren ./cmd/warren \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/warren /usr/local/bin/warren
# The data dir must exist and belong to the nonroot user (uid 65532) before it becomes a volume.
COPY --from=build --chown=65532:65532 /out/data /var/lib/warren
VOLUME /var/lib/warren
EXPOSE 5672
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/warren", "--listen", ":5672", "--data-dir", "/var/lib/warren"]
