# lanchat — see README.md. Every target works on a fresh machine with Go;
# the end-to-end tests also need root, iproute2 and nftables (.ci/run
# installs them).

GO       ?= go
BIN      := bin/lanchat
# Arguments for `make run`, e.g. make run ARGS="--name alice"
ARGS     ?=

.PHONY: all build run test unit e2e lint bench fuzz clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/lanchat

# On a terminal, the chat UI on a node of its own (or attached to the one
# running); otherwise a node in the foreground printing events (lanchat
# run). Either way Ctrl-C (in the UI: on an empty line) leaves cleanly.
run: build
	@if [ -t 0 ] && [ -t 1 ]; then ./$(BIN) ui $(ARGS); else ./$(BIN) run $(ARGS); fi

# Everything CI checks: formatting, vet, and every test (unit and
# end-to-end on network namespaces) under the race detector.
test: lint
	$(GO) test -race -count=1 -timeout 20m ./...

unit: lint
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)

e2e:
	$(GO) test -count=1 -timeout 20m -v ./e2e/

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# Speed and cost figures recorded in BENCHMARKS.md (about 10 minutes).
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3000x -count 1 ./message/
	$(GO) test -run '^$$' -bench . -benchtime 20x -count 1 ./message/roomsync/
	$(GO) test -run '^$$' -bench 'PersistedSend' -benchtime 3000x -count 1 ./node/
	$(GO) test -run '^$$' -bench 'Sustained|QueuedBacklog|RoomCatchUp' -benchtime 1x -count 1 ./node/
	$(GO) test -run '^$$' -bench 'AddReceived' -benchtime 30000x -count 1 ./message/store/
	$(GO) test -run '^$$' -bench 'PairCPU' -benchtime 30000x -count 1 ./message/store/
	$(GO) test -run '^$$' -bench 'Size100k|Outbox10000|History1M' -benchtime 1x -count 1 -timeout 30m ./message/store/
	$(GO) test -run '^$$' -bench 'Conversation100k' -benchtime 200x -count 1 ./message/store/
	$(GO) test -run '^$$' -bench '100k' -benchtime 20x -count 1 ./cmd/lanchat/tui/
	$(GO) test -run '^$$' -bench 'Idle' -benchtime 1x -count 1 ./cmd/lanchat/tui/
	$(GO) test -run '^$$' -bench . -benchtime 2x -count 1 -timeout 30m ./filexfer/
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 30m ./e2e/

# A short run of every fuzzer (longer: make fuzz FUZZTIME=5m).
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin
