# cleanroom build. DuckDB's Arrow API needs the duckdb_arrow build tag: it is set here, once,
# for build, test, vet and bench alike.
export GOFLAGS := -tags=duckdb_arrow
export CGO_ENABLED := 1

GO  ?= go
BIN := bin/cleanroom
# System packages the build and tests need (Debian names); installed only when missing.
DEB_PACKAGES := gcc g++ make

.PHONY: build demo test deps bench gobench beam fuzz crashtest fmt vet lint crossbuild loadtest

build:
	$(GO) build -o $(BIN) ./cmd/cleanroom

demo: build
	./$(BIN) demo

deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update && apt-get install -y $$missing; fi

# The Privacy on Beam baseline (bench/beam) is a module of its own, so ./... does not reach it:
# its tests run here too, so the baseline cannot rot.
test: deps
	$(GO) test -count=1 -timeout 20m ./...
	cd bench/beam && GOFLAGS= $(GO) test -count=1 -timeout 10m ./...

# 60 s of open-loop mixed API traffic against a server this starts on loopback (cleanroom
# loadtest); fails on any unexpected error or on server RSS growth after the warm-up. A short
# version runs in make test (TestLoadtestShortRunHasNoUnexpectedErrors).
LOADTEST_FLAGS ?= --rate 25 --duration 60s
loadtest: build
	./$(BIN) loadtest $(LOADTEST_FLAGS)

# cleanroom bench (docs/performance.md): every DP workload against raw DuckDB and Privacy on
# Beam, ingest, memory and HTTP latency in one run. The Beam program is its own module
# (bench/beam), so the product binary does not link Beam. BENCH_FLAGS adds flags, e.g.
# BENCH_SCALES=1e8 BENCH_FLAGS='--workloads count_sum --http=false'.
BEAM_BIN     := bin/beam-bench
BENCH_SCALES ?= 1e6,1e7
BENCH_FLAGS  ?=
bench: build beam
	./$(BIN) bench --scales $(BENCH_SCALES) --beam $(BEAM_BIN) $(BENCH_FLAGS)

beam:
	cd bench/beam && GOFLAGS= $(GO) build -o ../../$(BEAM_BIN) .

# The Go benchmarks (engine and sandbox; each prints its ratio to raw DuckDB).
gobench: build
	$(GO) test -run '^$$' -bench . -benchtime 3x -timeout 60m ./engine/ ./sandbox/

# Every fuzz target for FUZZTIME each (go test -fuzz takes one target per run). The seed
# corpora already run in make test; this explores beyond them.
FUZZTIME ?= 30s
fuzz:
	@set -e; for pkg in $$(git grep -l '^func Fuzz' -- '*_test.go' | xargs -n1 dirname | sort -u); do \
		for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$pkg/*_test.go | cut -d' ' -f2); do \
			echo "== $$pkg $$f"; $(GO) test ./$$pkg -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME); \
		done; \
	done

# The crash harness at full length: CRASH_KILLS SIGKILLs of the real server binary or its
# sandbox worker at random points, every invariant checked after each (docs/reliability.md,
# "Crash safety"). make test runs a short version (4 faults). CRASH_SEED repeats a run.
CRASH_KILLS ?= 50
CRASH_SEED  ?=
crashtest: build
	CLEANROOM_CRASH_KILLS=$(CRASH_KILLS) CLEANROOM_CRASH_SEED=$(CRASH_SEED) CLEANROOM_CRASH_BIN=$(abspath $(BIN)) \
		$(GO) test -count=1 -timeout 60m -run '^TestCrashHarness' -v ./cmd/cleanroom/

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

# The Go client and the API documents build without cgo (and so without DuckDB), tags or not.
lint: crossbuild
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	CGO_ENABLED=0 GOFLAGS= $(GO) build ./server/api ./server/client
	CGO_ENABLED=0 $(GO) build ./server/api ./server/client

# Every package that does not link DuckDB (no duckdb-go in its `go list -deps`) builds for
# these systems without cgo; the sandbox and what imports it need cgo and Linux's isolation
# (elsewhere the worker reports isolation unavailable: sandbox/isolate_other.go). The set is
# computed per system; CROSS_REQUIRED must stay in it, so a new DuckDB import there fails here.
CROSS_GOOS     := darwin windows
CROSS_REQUIRED := catalog dp errcode rawset sandbox/wire sandbox/sqlgen server/api server/client engine/gate engine/plan engine/post
MODULE         := github.com/c1b99f93/cleanroom
crossbuild:
	@set -e; for os in $(CROSS_GOOS); do \
		pkgs=$$(GOOS=$$os CGO_ENABLED=0 $(GO) list -e -f '{{.ImportPath}}{{range .Deps}} {{.}}{{end}}' ./... | grep -v ' github.com/duckdb/duckdb-go' | cut -d' ' -f1); \
		for p in $(CROSS_REQUIRED); do echo "$$pkgs" | grep -qx "$(MODULE)/$$p" || { echo "crossbuild: $$p links DuckDB"; exit 1; }; done; \
		echo "crossbuild GOOS=$$os CGO_ENABLED=0: $$(echo $$pkgs | wc -w) packages"; \
		GOOS=$$os CGO_ENABLED=0 $(GO) build $$pkgs; \
	done
