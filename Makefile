# The two commands of the README, and the steps they share.
#   make demo   set up if needed, build, run center + RTSP camera (vtest.avi) + agent
#   make test   set up if needed, run the whole test suite
# DEMO_ARGS is passed to xl-demo, e.g. make demo DEMO_ARGS="--for 90s".

ORT_DYLIB_PATH := $(CURDIR)/.cache/onnxruntime/libonnxruntime.so.1.31.1
export ORT_DYLIB_PATH

.PHONY: setup build demo test

setup:
	@bash scripts/setup.sh

build: setup
	cargo build --release --locked --workspace --bins

demo: build
	target/release/xl-demo $(DEMO_ARGS)

test: setup
	cargo test --locked --workspace
