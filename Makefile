# preheat: make demo runs the main job on embedded defaults; make test runs
# every test, Kinesis ones included (against kinesalite on 127.0.0.1).

GO       ?= go
NPM      ?= npm
PKGS     ?= ./...
BENCH    ?= .
BENCHTIME ?= 1s
FUZZTIME ?= 30s
KINESALITE := tools/kinesalite/node_modules/kinesalite/package.json
PROTOPEERS := tools/protopeers/node_modules/.package-lock.json

.PHONY: all build demo test test-short vet fmt-check bench bench-tap fuzz kinesalite protopeers clean

all: build

build:
	$(GO) build -o bin/preheat ./cmd/preheat

demo:
	$(GO) run ./cmd/preheat demo

# Installs kinesalite from the committed lock file when it is missing.
kinesalite: $(KINESALITE)
$(KINESALITE): tools/kinesalite/package.json tools/kinesalite/package-lock.json
	$(NPM) ci --prefix tools/kinesalite --no-audit --no-fund
	@touch $@

# Installs the websocket protocol peers (graphql-ws, subscriptions-transport-ws,
# socket.io, rpc-websockets) from the committed lock file when missing.
protopeers: $(PROTOPEERS)
$(PROTOPEERS): tools/protopeers/package.json tools/protopeers/package-lock.json
	$(NPM) ci --prefix tools/protopeers --no-audit --no-fund
	@touch $@

test: kinesalite protopeers vet fmt-check
	$(GO) test -race -count=1 -timeout 14m $(PKGS)
	$(MAKE) deploy-test

# Without the race detector and Kinesis setup: a quick loop while editing.
test-short:
	$(GO) test -short -count=1 $(PKGS)

# Vets, and checks that everything still builds for macOS, where the
# libraries and the tools are used on laptops (the event loop is Linux only).
vet:
	$(GO) vet $(PKGS)
	GOOS=darwin $(GO) build $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './tools/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Benchmarks; results in bench.txt, compare runs with benchstat.
bench: kinesalite
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -benchmem $(PKGS) | tee bench.txt

# The tap against nginx and a direct connection (needs nginx: apt-get install
# nginx-light); about 3 minutes a round. See docs/benchmarks.md.
bench-tap:
	bash bench/tap.sh

# Runs every fuzz target for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

clean:
	rm -rf bin bench.txt

# A real JVM warmed end to end (needs a JDK, javac and java on PATH): the
# fixture's own tests, then capture, cache, warm, first traffic and the
# -Xint and C1-only controls; about 4 minutes. See docs/benchmarks-jvm.md.
.PHONY: jvm-e2e
jvm-e2e:
	$(GO) test -race -count=1 -timeout 5m -v ./internal/jvmfixture/
	$(GO) test -race -count=1 -timeout 15m -run '^TestJVMWarmEndToEnd$$' -v ./cmd/preheat/

# The real JVM's figures (needs a JDK): bench/jvm, about 4 minutes a run.
# JVM_BENCH is its subcommand and flags (go run ./bench/jvm help, and
# SUBCOMMAND -h). See docs/benchmarks-jvm.md.
JVM_BENCH ?= figures --runs 3
.PHONY: bench-jvm
bench-jvm:
	$(GO) run ./bench/jvm $(JVM_BENCH)

# The container image, built from Dockerfile with buildah and no Docker
# engine (tools/image/build.sh, as root): bin/preheat-image.tar, an OCI
# archive. See docs/deploy.md.
.PHONY: image deploy-deps deploy-test
image:
	bash tools/image/build.sh bin/preheat-image.tar

# What deploy/'s tests need from Debian: promtool (the prometheus package)
# and buildah. Installs them when missing (as root).
deploy-deps:
	@command -v promtool >/dev/null && command -v buildah >/dev/null || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus buildah; }

# The deployment artifacts (deploy/, a module of its own): manifests, flags,
# dashboard and alerts, the image. Without promtool or buildah those tests
# skip, except under CI=true.
deploy-test: kinesalite
	cd deploy && $(GO) vet ./... && $(GO) test -count=1 -timeout 15m ./...
