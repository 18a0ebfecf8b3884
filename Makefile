# mailbrake: the one entry point for building, running and testing.
GO        ?= go
BIN       ?= bin/mailbrake
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The commit's time, not the clock's: the same commit builds the same binary.
BUILD_DATE ?= $(shell TZ=UTC0 git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo unknown)
COMMIT    ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
CLI       := github.com/mailbrake/mailbrake/internal/cli
LDFLAGS   := -s -w -X $(CLI).Version=$(VERSION) -X $(CLI).Commit=$(COMMIT) -X $(CLI).BuildDate=$(BUILD_DATE)
FUZZTIME  ?= 10s

.PHONY: all build run test test-deps unit fuzz bench check clean deb

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/mailbrake

# Run the daemon in the foreground on its embedded defaults.
run: build
	./$(BIN) serve

# Everything CI runs: install the Debian packages the tests need (when
# missing and running as root), vet, and every test including the
# real-Postfix end-to-end tests. Every fuzz target's seed corpus
# (testdata/fuzz and f.Add) runs as ordinary test cases, so the command is
# deterministic; mutation fuzzing, which can find a new input on any run,
# is `make fuzz`.
test: test-deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

test-deps:
	./scripts/install-test-deps.sh

unit:
	$(GO) test -short ./...

# Mutation fuzzing of every fuzz target, FUZZTIME each (default 10s):
#   make fuzz FUZZTIME=5m
# A finding is written to the package's testdata/fuzz/<Target>/; fix it and
# commit the input, so that `make test` runs it as a seed from then on.
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

check:
	$(GO) vet ./...
	@command -v staticcheck >/dev/null && staticcheck ./... || echo "staticcheck not installed; skipped"
	@command -v govulncheck >/dev/null && govulncheck ./... || echo "govulncheck not installed; skipped"

# The Debian package (dist/mailbrake_VERSION_ARCH.deb): the binary, the
# systemd unit, /etc/mailbrake/mailbrake.yaml, /var/lib/mailbrake and the
# man pages; see docs/deploy.md. The version comes from the last tag.
deb: build
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || echo 0) $(GO) run ./tools/mkdeb -bin $(BIN) -out dist

clean:
	rm -rf bin dist
