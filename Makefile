# berth — see README.md. Everything runs as root on Linux.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null | sed 's/^v//' | grep -E '^[0-9]+\.' || echo 0.0.0-dev)
LDFLAGS   := -X github.com/berthcri/berth/internal/version.Version=$(VERSION)
# berthd is static Go (libcontainer, the cgo part, runs in berth-monitor helpers), and every page of its
# executable ends up resident, so its size is its memory. grpcnotrace: without it grpc links golang.org/x/net/trace,
# whose html/template makes the linker keep every exported method of every type (4 MB more).
# nri_no_wasm: NRI plugins run as processes on the NRI socket; the WebAssembly plugin runtime (wazero) would
# add 3.4 MB.
GOFLAGS_B := -tags grpcnotrace,nri_no_wasm -trimpath -ldflags "$(LDFLAGS)"
# berth-monitor links libcontainer's C (nsenter, libseccomp) and is static, as runc's release binaries are: no
# dynamic loader, libc or libseccomp relocations in every monitor and pause process (~120 KiB PSS less per
# pod), and nodes need no libseccomp. netgo and osusergo keep glibc's NSS, which cannot be static, out.
MONITOR_B := -tags seccomp,netgo,osusergo -trimpath -ldflags "-s -w -extldflags -static"
PREFIX    ?= /usr/local
TOOLS     ?= $(HOME)/.cache/berth/tools
CNI_BIN   ?= /opt/cni/bin
# Node VMs test-vm boots (hack/vm/run.sh), each running critest and the kill -9 recovery tests (debian12 also the
# systemd leg: the installer and berthd.service on its systemd).
VM_NODES  ?= debian12 debian11

.PHONY: all build installer install run deps test unit integration critest critest-nri installer-e2e test-vm fuzz bench lint clean

all: build

# build: berthd and berth-monitor, the per-pod monitor and libcontainer helper berthd runs from its own directory
# (stripped: every pod maps it).
build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_B) -o bin/berthd ./cmd/berthd
	CGO_ENABLED=1 $(GO) build $(MONITOR_B) -o bin/berth-monitor ./cmd/berth-monitor

# installer: the node installer, static (its image has no libc); hack/cmd/mkinstaller packs it with berthd.
installer:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/berth-installer ./cmd/berth-installer

deps:
	hack/install-deps.sh

# install writes each new binary next to the old one and renames it over: running processes keep their file. The
# monitor goes first: a new berthd starts the monitor it was built with.
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/etc/berth/berth.d
	for b in berth-monitor berthd; do \
		install -m 0755 bin/$$b $(DESTDIR)$(PREFIX)/bin/.$$b.new && mv -f $(DESTDIR)$(PREFIX)/bin/.$$b.new $(DESTDIR)$(PREFIX)/bin/$$b || exit 1; \
	done
	[ -e $(DESTDIR)/etc/berth/berth.toml ] || install -m 0644 deploy/berth.toml $(DESTDIR)/etc/berth/berth.toml
# userns_group: berthd makes its shared state dirs 0710 to it and advertises user namespaces only with it.
	[ -n "$(DESTDIR)" ] || getent group berth-userns >/dev/null || groupadd --system berth-userns

# run: install what berthd needs on this host, then serve in the foreground with the default config.
run: deps install
	hack/install-cni.sh "$(CNI_BIN)" /etc/cni/net.d
	$(PREFIX)/bin/berthd

test: deps lint unit integration fuzz installer-e2e critest critest-nri test-vm

unit:
	$(GO) test -race -count=1 ./...

integration: build
	hack/integration.sh

critest:
	hack/critest.sh

# critest-nri: critest's NRI specs, with berthd's NRI on and critest's test plugins on its socket.
critest-nri:
	BERTH_CRITEST_NRI=1 BERTH_CRITEST_OUT=$(CURDIR)/_output/critest-nri hack/critest.sh

installer-e2e:
	hack/installer-e2e.sh

# test-vm: critest and the recovery tests on real node OSes under qemu (kernel 6.1 and 5.10, systemd, cgroup v2);
# one critest and recovery line per node and cgroup driver (Debian 12: systemd and cgroupfs), and on debian12 the
# systemd leg's line. A single node, a focused run: hack/vm/run.sh debian12 -ginkgo.focus='Runtime info'.
test-vm:
	BERTH_VM_NODES="$(VM_NODES)" hack/vm/run.sh all

fuzz:
	hack/fuzz.sh

bench:
	hack/bench/run.sh

lint:
	$(GO) vet -tags seccomp,grpcnotrace ./...
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) mod tidy -diff

clean:
	rm -rf bin _output
