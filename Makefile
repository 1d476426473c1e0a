# kubeatlas: build, test and develop. `make help` lists the targets.
SHELL   := /usr/bin/env bash
GO      ?= go
TOOLS   := $(CURDIR)/.bin
BIN     := $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/kubeatlas/kubeatlas/agent/command.Version=$(VERSION) \
           -X github.com/kubeatlas/kubeatlas/aggregator/command.Version=$(VERSION) \
           -X github.com/kubeatlas/kubeatlas/client/cli.Version=$(VERSION)
export PATH := $(TOOLS):$(PATH)

.PHONY: help build demo demo-ui demo-fleet fleet-load cluster cluster-down test unit integration proto proto-check lint breaking baseline bench load tools clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build the three binaries into bin/
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./agent/cmd/kubeatlas-agent ./aggregator/cmd/kubeatlas-aggregator ./client/cmd/kubeatlas

demo: ## the main job: explain the bundled reference cluster
	$(GO) run -ldflags "$(LDFLAGS)" ./client/cmd/kubeatlas demo

demo-ui: ## the demo in the web view: the reference cluster at http://127.0.0.1:7480/ui/ (Ctrl-C stops it)
	$(GO) run -ldflags "$(LDFLAGS)" ./client/cmd/kubeatlas demo --ui 127.0.0.1:7480

demo-fleet: ## the fleet tier on this machine: embedded NATS, three aggregators publishing bundles, a fleet view, the CLI
	cd integration && $(GO) run ./cmd/kubeatlas-demo-fleet

cluster: ## a real single-node kubeadm cluster on this machine, kubeatlas deployed in it from deploy/, left running (root)
	cd integration && $(GO) run ./cmd/kubeatlas-cluster up

cluster-down: ## remove what `make cluster` left running
	cd integration && $(GO) run ./cmd/kubeatlas-cluster down

test: unit integration ## the whole suite: unit tests, then integration tests

unit: ## unit tests (with the race detector)
	$(GO) test -race -count=1 ./...

integration: ## integration tests against real processes, cgroups, etcd and kube-apiserver
	cd integration && $(GO) test -count=1 -timeout 60m ./...

tools: ## build the pinned tools (buf, protoc plugins, staticcheck, grpcurl, benchstat) into .bin/
	cd tools && $(GO) build -o $(TOOLS)/ github.com/bufbuild/buf/cmd/buf google.golang.org/protobuf/cmd/protoc-gen-go \
		google.golang.org/grpc/cmd/protoc-gen-go-grpc honnef.co/go/tools/cmd/staticcheck \
		github.com/fullstorydev/grpcurl/cmd/grpcurl golang.org/x/perf/cmd/benchstat

proto: tools ## regenerate the Go code of the API and its commented descriptor set
	buf generate
	buf build -o proto/kubeatlas/v1/descriptors/kubeatlas.binpb

proto-check: proto ## fail when the committed generated code is not what buf generates
	@git diff --exit-code -- proto || { echo "generated code differs: run 'make proto' and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- proto)" || { git status --porcelain -- proto; echo "untracked generated files" >&2; exit 1; }

lint: tools ## gofmt, go vet, staticcheck and buf lint
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); test -z "$$out" || { echo "gofmt would change:"; echo "$$out"; exit 1; } >&2
	$(GO) vet ./...
	cd integration && $(GO) vet ./...
	staticcheck ./...
	cd integration && staticcheck ./...
	buf lint

breaking: tools ## buf breaking (FILE and WIRE_JSON) against the last released API, proto/baseline.binpb
	buf breaking --against proto/baseline.binpb

baseline: tools ## record the API as released: run once per release, then commit proto/baseline.binpb
	buf build --exclude-source-info -o proto/baseline.binpb

bench: ## benchmarks (see BENCHMARKS.md)
	$(GO) test -run '^$$' -bench . -benchmem ./...

FLEET_NODES ?= 100000
fleet-load: build ## the fleet tier at scale: 100 publishers, $(FLEET_NODES) nodes in JetStream, a fleet view (see BENCHMARKS.md)
	cd integration && $(GO) run ./cmd/kubeatlas-fleet-load -aggregator $(BIN)/kubeatlas-aggregator -nodes $(FLEET_NODES) $(FLEETFLAGS)

NODES ?= 10000
load: build ## drive a real aggregator with $(NODES) simulated agents (see BENCHMARKS.md)
	cd integration && $(GO) run ./cmd/kubeatlas-load -aggregator $(BIN)/kubeatlas-aggregator -nodes $(NODES) $(LOADFLAGS)

clean: ## remove build output
	rm -rf $(BIN)
