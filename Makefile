# cdc-cleaner: the commands a newcomer needs.
#   make quickstart   run the cleaner end to end on a throwaway PostgreSQL and a temp folder
#   make test         vet and run every test (unit and integration; needs PostgreSQL server binaries)

GO ?= go

.PHONY: all build test quickstart fuzz vet compose-check

all: build

build:
	$(GO) build -o bin/cdc-cleaner ./cmd/cdc-cleaner

quickstart:
	$(GO) run ./examples/quickstart

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || (echo "gofmt would change:"; gofmt -l .; exit 1)

test: vet compose-check
	$(GO) test -race -count=1 ./...

# Validates docker-compose.yml without a Docker engine. In CI a missing
# docker-compose is a failure; elsewhere it is skipped with a note.
compose-check:
	@if command -v docker-compose >/dev/null; then docker-compose config -q && echo "docker-compose.yml: valid"; \
	elif docker compose version >/dev/null 2>&1; then docker compose config -q && echo "docker-compose.yml: valid"; \
	elif [ -n "$$CI" ]; then echo "docker-compose not found: apt-get install docker-compose"; exit 1; \
	else echo "docker-compose not found; skipping the docker-compose.yml check (apt-get install docker-compose)"; fi

# Short fuzzing runs of every fuzz target (longer: make fuzz FUZZTIME=10m).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run=NONE -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./decoder/
	$(GO) test -run=NONE -fuzz=FuzzValidatePathConfined -fuzztime=$(FUZZTIME) ./deleter/
	$(GO) test -run=NONE -fuzz=FuzzLoad -fuzztime=$(FUZZTIME) ./config/
