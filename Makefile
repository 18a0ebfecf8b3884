# mailbrake: the one entry point for building, running and testing.
GO        ?= go
BIN       ?= bin/mailbrake
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/mailbrake/mailbrake/internal/cli.Version=$(VERSION)
FUZZTIME  ?= 10s

.PHONY: all build run test test-deps unit fuzz fuzz-short bench check clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/mailbrake

# Run the daemon in the foreground on its embedded defaults.
run: build
	./$(BIN) serve

# Everything CI runs: install the Debian packages the tests need (when
# missing and running as root), vet, every test including the real-Postfix
# end-to-end tests, and a short run of every fuzz target.
test: test-deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz-short.sh

test-deps:
	./scripts/install-test-deps.sh

unit:
	$(GO) test -short ./...

fuzz-short:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz-short.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

check:
	$(GO) vet ./...
	@command -v staticcheck >/dev/null && staticcheck ./... || echo "staticcheck not installed; skipped"
	@command -v govulncheck >/dev/null && govulncheck ./... || echo "govulncheck not installed; skipped"

clean:
	rm -rf bin
