# cdc-cleaner: the commands a newcomer needs.
#   make quickstart   run the cleaner end to end on a throwaway PostgreSQL and a temp folder
#   make test         vet and run every test (unit and integration; needs PostgreSQL server binaries)

GO ?= go

.PHONY: all build test quickstart fuzz vet

all: build

build:
	$(GO) build -o bin/cdc-cleaner ./cmd/cdc-cleaner

quickstart:
	$(GO) run ./examples/quickstart

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || (echo "gofmt would change:"; gofmt -l .; exit 1)

test: vet
	$(GO) test -race -count=1 ./...

# Short fuzzing runs of every fuzz target (longer: make fuzz FUZZTIME=10m).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run=NONE -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./decoder/
	$(GO) test -run=NONE -fuzz=FuzzValidatePathConfined -fuzztime=$(FUZZTIME) ./deleter/
	$(GO) test -run=NONE -fuzz=FuzzLoad -fuzztime=$(FUZZTIME) ./config/
