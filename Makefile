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
# build and installer write to BIN for ARCH (GOARCH). Another architecture's berth-monitor is built with Debian's cross
# compiler and that architecture's libseccomp.a (hack/install-release-deps.sh); make release builds amd64 and arm64.
BIN       ?= bin
HOST_ARCH := $(shell $(GO) env GOHOSTARCH)
ARCH      ?= $(shell $(GO) env GOARCH)
triplet_amd64 := x86_64-linux-gnu
triplet_arm64 := aarch64-linux-gnu
CROSS     := $(if $(filter $(ARCH),$(HOST_ARCH)),,CC=$(triplet_$(ARCH))-gcc PKG_CONFIG_LIBDIR=/usr/lib/$(triplet_$(ARCH))/pkgconfig)
SYSTEMD_UNIT_DIR ?= /etc/systemd/system

.PHONY: all build installer install install-check release run deps test unit integration critest critest-crun critest-nri installer-e2e test-vm fuzz bench lint clean

all: build

# build: berthd and berth-monitor, the per-pod monitor and libcontainer helper berthd runs from its own directory
# (stripped: every pod maps it).
build:
	CGO_ENABLED=0 GOARCH=$(ARCH) $(GO) build $(GOFLAGS_B) -o $(BIN)/berthd ./cmd/berthd
	CGO_ENABLED=1 GOARCH=$(ARCH) $(CROSS) $(GO) build $(MONITOR_B) -o $(BIN)/berth-monitor ./cmd/berth-monitor

# installer: the node installer, static (its image has no libc); hack/cmd/mkinstaller packs it with berthd.
installer:
	CGO_ENABLED=0 GOARCH=$(ARCH) $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/berth-installer ./cmd/berth-installer

# release: _output/release/berth-VERSION-linux-{amd64,arm64}.tar.gz (static binaries, CNI plugins, unit, config,
# crictl.yaml, SHA256SUMS; each unpacks to a directory berth-installer's --payload reads) and the multi-arch installer
# image index, pushed to BERTH_RELEASE_REGISTRY (the loopback test bed's 127.0.0.1:5000) and checked there.
release:
	hack/install-release-deps.sh
	VERSION=$(VERSION) hack/release.sh

deps:
	hack/install-deps.sh

# install writes each new binary next to the old one and renames it over: running processes keep their file. The
# monitor goes first: a new berthd starts the monitor it was built with. The systemd unit goes in where systemd runs
# (/run/systemd/system, as sd_booted(3) checks) or into a DESTDIR; `systemctl enable --now berthd` starts it.
# berth.toml and /etc/crictl.yaml are written only where absent: they are the host's once there.
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/etc/berth/berth.d
	for b in berth-monitor berthd; do \
		install -m 0755 $(BIN)/$$b $(DESTDIR)$(PREFIX)/bin/.$$b.new && mv -f $(DESTDIR)$(PREFIX)/bin/.$$b.new $(DESTDIR)$(PREFIX)/bin/$$b || exit 1; \
	done
	[ -e $(DESTDIR)/etc/berth/berth.toml ] || install -m 0644 deploy/berth.toml $(DESTDIR)/etc/berth/berth.toml
	[ -e $(DESTDIR)/etc/crictl.yaml ] || install -m 0644 deploy/crictl.yaml $(DESTDIR)/etc/crictl.yaml
	if [ -n "$(DESTDIR)" ] || [ -d /run/systemd/system ]; then \
		install -d $(DESTDIR)$(SYSTEMD_UNIT_DIR) && \
		sed 's|^ExecStart=/usr/local/bin/|ExecStart=$(PREFIX)/bin/|' deploy/berthd.service >$(DESTDIR)$(SYSTEMD_UNIT_DIR)/.berthd.service.new && \
		chmod 0644 $(DESTDIR)$(SYSTEMD_UNIT_DIR)/.berthd.service.new && \
		mv -f $(DESTDIR)$(SYSTEMD_UNIT_DIR)/.berthd.service.new $(DESTDIR)$(SYSTEMD_UNIT_DIR)/berthd.service || exit 1; \
	fi
	[ -n "$(DESTDIR)" ] || [ ! -d /run/systemd/system ] || systemctl daemon-reload
# userns_group: berthd makes its shared state dirs 0710 to it and advertises user namespaces only with it.
	[ -n "$(DESTDIR)" ] || getent group berth-userns >/dev/null || groupadd --system berth-userns

# run: install what berthd needs on this host, then serve in the foreground with the default config.
run: deps install
	hack/install-cni.sh "$(CNI_BIN)" /etc/cni/net.d
	$(PREFIX)/bin/berthd

test: deps lint unit install-check integration fuzz installer-e2e critest critest-crun critest-nri test-vm

unit:
	$(GO) test -race -count=1 ./...

integration: build
	hack/integration.sh

critest:
	hack/critest.sh

# critest-crun: critest against the RuntimeClass handler crun (Debian's crun, an OCI runtime binary under the pod
# monitor), with hack/critest-skips-crun.txt added to the skips.
critest-crun:
	BERTH_CRITEST_HANDLER=crun hack/critest.sh

# critest-nri: critest's NRI specs, with berthd's NRI on and critest's test plugins on its socket.
critest-nri:
	BERTH_CRITEST_NRI=1 BERTH_CRITEST_OUT=$(CURDIR)/_output/critest-nri hack/critest.sh

installer-e2e:
	hack/installer-e2e.sh

# install-check: make install into a temporary DESTDIR lands the unit and crictl.yaml and keeps the host's files.
install-check:
	hack/install-check.sh

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
