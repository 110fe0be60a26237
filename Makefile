# Parley's two commands: `make run` starts the kernel with the demo,
# `make test` installs what the tests need and runs them all.

GO ?= go

.PHONY: run test deps vet bench fuzz sdk

run:
	$(GO) run ./cmd/kernel serve --demo

# deps installs what the tests need on a fresh Debian/Ubuntu machine: Go
# modules (through the proxy, esbuild among them), and Debian's chromium
# (the browser tests) and node-typescript (tsc, for the SDK's type
# declarations) when missing. The browser and tsc tests fail, never skip,
# without them.
DEBIAN_DEPS = chromium:chromium tsc:node-typescript

deps:
	@command -v $(GO) >/dev/null || { echo "Go 1.26 or newer is required: https://go.dev/dl/"; exit 1; }
	$(GO) mod download
	@missing=""; for d in $(DEBIAN_DEPS); do command -v $${d%%:*} >/dev/null || missing="$$missing $${d#*:}"; done; \
	if [ -n "$$missing" ]; then \
		command -v apt-get >/dev/null || { echo "install$$missing (no apt-get here)"; exit 1; }; \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing$$missing"; \
		$$sudo apt-get update && $$sudo apt-get install -y $$missing; \
	fi

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt would change:"; gofmt -l .; exit 1; }

# test-output/ keeps what tests leave to look at (the browser tests'
# screenshots) under test-output/_artifacts/.
test: deps vet
	$(GO) test -run '^$$' -bench . -benchtime 1x ./bench >/dev/null  # the benchmarks still run
	@mkdir -p test-output
	$(GO) test -race -timeout 15m -artifacts -outputdir $(CURDIR)/test-output ./...

# sdk rebuilds the browser SDK's bundle from its TypeScript source (commit
# the result: a test compares them) and type-checks it.
sdk:
	$(GO) generate ./sdkapi/sdk
	cd sdkapi/sdk && tsc --noEmit -p .

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
	BENCH_CHAT_SECONDS=5 $(GO) test -run '^$$' -bench Chat -benchtime 1x ./bench
	BENCH_SFU_CALLS=10,20 BENCH_SFU_SECONDS=5 $(GO) test -run '^$$' -bench SFU -benchtime 1x ./bench

# fuzz runs each decoder fuzz target for a while; new corpus entries land in
# the Go cache, copy the interesting ones to testdata/fuzz to keep them.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeRecord -fuzztime 60s ./eventlog
	$(GO) test -run '^$$' -fuzz FuzzDecodeRequest -fuzztime 60s ./sdkapi/session
	$(GO) test -run '^$$' -fuzz FuzzRequests -fuzztime 60s ./plugins/chat
	$(GO) test -run '^$$' -fuzz FuzzExpandStream -fuzztime 60s ./plugins
	$(GO) test -run '^$$' -fuzz FuzzRecvLog -fuzztime 60s ./plugins/call/sfu
