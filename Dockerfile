# cdc-cleaner: a static binary on a minimal image, running as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/cdc-cleaner ./cmd/cdc-cleaner

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/cdc-cleaner /usr/local/bin/cdc-cleaner
USER nonroot:nonroot
EXPOSE 9187
ENTRYPOINT ["/usr/local/bin/cdc-cleaner"]
CMD ["run", "--config", "/etc/cdc-cleaner/cdc-cleaner.yaml"]
