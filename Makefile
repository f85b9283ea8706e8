# pclab — two commands on a fresh machine with Rust and git:
#   make serve   install what is missing, build in release, serve on http://127.0.0.1:8080
#   make test    install what is missing, then fmt, clippy (native + wasm32), cargo deny, every test,
#                a SLURM job array on a one-node cluster, the web build, the browser tests
SHELL := /bin/bash
.DEFAULT_GOAL := help

TRUNK_VERSION := 0.21.14
DENY_VERSION := 0.20.2
# wasm-bindgen-cli must be exactly the wasm-bindgen version Cargo.lock pins.
WASM_BINDGEN_VERSION := $(shell awk '/^name = "wasm-bindgen"$$/ { getline; gsub(/[" ]/, "", $$0); sub(/version=/, "", $$0); print; exit }' Cargo.lock)
APT_PACKAGES := mesa-vulkan-drivers libvulkan1 chromium
# Where `cargo install` puts tools: $CARGO_HOME/bin, or ~/.cargo/bin when CARGO_HOME is unset.
CARGO_BIN := $(if $(CARGO_HOME),$(CARGO_HOME),$(HOME)/.cargo)/bin
export PATH := $(CARGO_BIN):$(PATH)
# GPU tests need an adapter unless PCLAB_REQUIRE_GPU=0 is set on purpose (a loud line then says
# they were skipped).
export PCLAB_REQUIRE_GPU ?= 1

.PHONY: help serve test tools system-deps lint deny unit slurm web e2e bench bench-gpu

help:
	@echo "make serve   build the web app in release and serve it on http://127.0.0.1:8080"
	@echo "make test    fmt, clippy (native + wasm32), every test, the web build, the browser tests"
	@echo "make bench   pclab bench at H = 8, 32, 128 (μPC, N = 128, T = H, B = 64) on the CPU"
	@echo "make bench-gpu  the paper's 128-layer configuration (N = 512, H = T = 128, B = 64) on the GPU"

# The Rust-side tools: the wasm32 target, Trunk and wasm-bindgen-cli at the pinned versions.
tools:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@trunk --version 2>/dev/null | grep -qx "trunk $(TRUNK_VERSION)" || cargo install --locked trunk@$(TRUNK_VERSION)
	@test -n "$(WASM_BINDGEN_VERSION)" || { echo "cannot read wasm-bindgen's version from Cargo.lock"; exit 1; }
	@wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $(WASM_BINDGEN_VERSION)" || cargo install --force wasm-bindgen-cli@$(WASM_BINDGEN_VERSION)

# System packages the tests need (a Vulkan driver for native GPU tests, Chromium for browser tests).
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" -eq 0 ]; then \
	    echo "installing:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; }; \
	  else \
	    echo "pclab's tests need Debian packages that are missing:$$missing"; \
	    echo "install them with:  sudo apt-get install -y $(APT_PACKAGES)"; \
	    exit 1; \
	  fi; \
	fi

serve: tools
	trunk serve --release

lint:
	cargo fmt --all -- --check
	cargo clippy --release --all-targets -- -D warnings
	cargo clippy --release --lib --bins --target wasm32-unknown-unknown --no-default-features --features ui -- -D warnings

# Licences, banned crates and sources of every dependency (deny.toml); offline. `--offline` needs
# every crate of Cargo.lock in the local registry — the Windows, macOS and Android ones too, which a
# Linux build never downloads — so `cargo fetch` (all targets) comes first.
deny:
	@cargo deny --version 2>/dev/null | grep -qx "cargo-deny $(DENY_VERSION)" || cargo install --locked cargo-deny@$(DENY_VERSION)
	cargo fetch --locked
	cargo deny --offline check bans licenses sources

unit:
	cargo test --release
	@if [ "$$PCLAB_REQUIRE_GPU" = "0" ]; then \
	  echo; echo "!!!!!!!! GPU tests SKIPPED (PCLAB_REQUIRE_GPU=0): the WGSL kernels were not checked !!!!!!!!"; echo; \
	fi

# A real one-node SLURM cluster runs a sharded `pclab reproduce` job array, a cancelled and
# resubmitted task included (scripts/slurm/test-cluster.sh; PCLAB_SLURM_TEST=0 skips it, loudly).
slurm:
	cargo build --release
	bash scripts/slurm/test-cluster.sh

web:
	trunk build --release

# Browser tests: Playwright (npm, pinned in e2e/package-lock.json) drives Debian's Chromium.
e2e:
	cd e2e && npm ci --no-audit --no-fund --loglevel=error && node run.mjs

test: tools system-deps lint deny unit slurm web e2e
	@if [ "$$PCLAB_REQUIRE_GPU" = "0" ]; then \
	  echo; echo "!!!!!!!! GPU tests SKIPPED (PCLAB_REQUIRE_GPU=0): the WGSL kernels were not checked !!!!!!!!"; echo; \
	fi

bench:
	cargo build --release
	for h in 8 32 128; do ./target/release/pclab bench --rules mupc --depth $$h --width 128 --steps $$h --batch 64 --backend cpu --json; done

# The paper's 128-layer configuration on the GPU (≈ 1.1 TFLOP per iteration nominal). Set
# WGPU_ADAPTER_NAME to choose among several adapters.
bench-gpu:
	cargo build --release
	./target/release/pclab bench --rules mupc --depth 128 --width 512 --steps 128 --batch 64 --backend gpu --warmup 3 --reps 20 --json
	./target/release/pclab bench --rules mupc --depth 32 --width 128 --steps 32 --batch 64 --backend gpu --json
