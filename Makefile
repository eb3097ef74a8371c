# dpstack: `make demo` shows the stack working against a Linux host in a
# network namespace; `make test` runs every test. Both install what is missing.
SHELL := /bin/bash
APT_PACKAGES := dpdk dpdk-dev libdpdk-dev libclang-dev pkg-config ethtool iproute2 \
	iputils-ping iputils-arping python3 perl util-linux curl nftables python3-scapy \
	wrk nginx valgrind iperf3 python3-prometheus-client tcpdump
CARGO ?= cargo
# Without the `dpdk` feature nothing may look for DPDK or libclang: with
# these pointing nowhere, anything that still did would fail the build.
NODPDK := PKG_CONFIG_LIBDIR=/nonexistent LIBCLANG_PATH=/nonexistent

.PHONY: all deps hugepages build release demo test unit unit-nodpdk integration lint fuzz fuzz-regress bench pathcost clean

all: build

deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq >/tmp/dpstack-apt.log 2>&1; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >>/tmp/dpstack-apt.log 2>&1 \
			|| { tail -20 /tmp/dpstack-apt.log; exit 1; }; \
	fi
	@$(MAKE) --no-print-directory hugepages

hugepages:
	@if [ "$$(cat /proc/sys/vm/nr_hugepages)" -lt 512 ]; then echo 512 > /proc/sys/vm/nr_hugepages || true; fi
	@mkdir -p /dev/hugepages; mountpoint -q /dev/hugepages || mount -t hugetlbfs nodev /dev/hugepages || true
	@grep -E 'HugePages_(Total|Free)' /proc/meminfo | tr '\n' ' '; echo

build: deps
	$(CARGO) build --workspace

release: deps
	$(CARGO) build --release

demo: release
	bash tests/tools/demo.sh

unit: deps
	$(CARGO) test --workspace --lib --bins

# The protocol and per-core unit tests without DPDK (README: "Without DPDK").
unit-nodpdk:
	$(NODPDK) $(CARGO) test --no-default-features --lib

integration: deps
	$(CARGO) build --release
	$(CARGO) test --test '*' -- --test-threads=1

test: deps
	$(CARGO) test --workspace -- --test-threads=1
	$(MAKE) --no-print-directory unit-nodpdk

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(NODPDK) $(CARGO) clippy --no-default-features --all-targets -- -D warnings

bench: release
	bash perf/bench.sh 5

# Every target of tests/fuzz for FUZZ_SECONDS each on its kept corpus, then
# one table of covered edges; fuzz-regress runs every kept input and crash
# once. See docs/fuzzing.md.
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh fuzz

fuzz-regress:
	bash tests/fuzz/run.sh regress

# Instructions per frame on the protocol path (perf/src/bin/pathcost.rs under
# callgrind, counted inside FuzzCore::receive, net of the harness case; the
# same method as `make bench` section 4). One JSON line per case;
# `make pathcost PATHCOST_TOP=15` also prints each case's 15 costliest
# functions (self cost, whole run, harness included) after its line.
PATHCOST_N ?= 2000
PATHCOST_TOP ?= 0
PATHCOST_OUT ?= /tmp/dpstack-pathcost
pathcost:
	@$(CARGO) build --release -q -p perf --bin pathcost
	@mkdir -p $(PATHCOST_OUT); \
	cg() { valgrind --tool=callgrind --toggle-collect='*FuzzCore*receive*' \
		--callgrind-out-file=$(PATHCOST_OUT)/cg-$$1.out target/release/pathcost $$1 $(PATHCOST_N) \
		>/dev/null 2>&1 || { echo "pathcost $$1 failed" >&2; exit 1; }; \
		awk -v n=$(PATHCOST_N) '/^totals:/ {printf "%.1f", $$2 / n}' $(PATHCOST_OUT)/cg-$$1.out; }; \
	h=$$(cg harness) || exit 1; \
	for c in udp-echo icmp-echo tcp-data-ack; do \
		frames=1; [ $$c = tcp-data-ack ] && frames=2; \
		raw=$$(cg $$c) || exit 1; \
		awk -v c=$$c -v n=$(PATHCOST_N) -v raw=$$raw -v h=$$h -v f=$$frames 'BEGIN { \
			printf "{\"case\": \"%s\", \"n\": %d, \"raw\": %.1f, \"harness\": %.1f, \"instructions\": %.0f}\n", \
				c, n, raw, h * f, raw - h * f }'; \
		if [ $(PATHCOST_TOP) -gt 0 ]; then \
			callgrind_annotate $(PATHCOST_OUT)/cg-$$c.out 2>/dev/null \
				| grep '%)' | grep -v 'PROGRAM TOTALS' | sed 's/ \[[^]]*\]$$//' | head -n $(PATHCOST_TOP); \
		fi; \
	done

clean:
	$(CARGO) clean
