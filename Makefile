# Parley's two commands: `make run` starts the kernel with the demo,
# `make test` installs what the tests need and runs them all.

GO ?= go

.PHONY: run test deps vet bench fuzz

run:
	$(GO) run ./cmd/kernel serve --demo

# deps installs what the tests need on a fresh Debian/Ubuntu machine. Today
# that is Go alone (modules come through the proxy); later issues add
# Debian packages (chromium) here.
deps:
	@command -v $(GO) >/dev/null || { echo "Go 1.26 or newer is required: https://go.dev/dl/"; exit 1; }
	$(GO) mod download

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt would change:"; gofmt -l .; exit 1; }

test: deps vet
	$(GO) test -run '^$$' -bench . -benchtime 1x ./bench >/dev/null  # the benchmarks still run
	$(GO) test -race -timeout 15m ./...

# bench runs the hot-path benchmarks; figures go in bench/README.md.
# Append and PluginDelivery count events, PluginCommand commands; Replay
# counts whole passes over a 200,000-event log.
bench:
	$(GO) test -run '^$$' -bench Append -benchtime 50000x ./bench
	$(GO) test -run '^$$' -bench Replay -benchtime 5x ./bench
	$(GO) test -run '^$$' -bench PluginDelivery -benchtime 200000x ./bench
	$(GO) test -run '^$$' -bench PluginCommand -benchtime 50000x ./bench
	$(GO) test -run '^$$' -bench SealOpen -benchtime 200000x ./bench
	$(GO) test -run '^$$' -bench SessionsIdle -benchtime 1x ./bench
	$(GO) test -run '^$$' -bench FanOut -benchtime 50x ./bench

# fuzz runs each decoder fuzz target for a while; new corpus entries land in
# the Go cache, copy the interesting ones to testdata/fuzz to keep them.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeRecord -fuzztime 60s ./eventlog
