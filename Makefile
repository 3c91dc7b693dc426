# The two commands of the README, and the steps they share.
#   make demo     set up if needed, build, run center + RTSP camera (vtest.avi) + agent
#   make test     set up if needed, check format and lints, run the whole test suite
#   make aarch64  the agent and the center for aarch64 boxes and servers (docs/hardware.md)
# DEMO_ARGS is passed to xl-demo, e.g. make demo DEMO_ARGS="--for 90s".

ORT_DYLIB_PATH := $(CURDIR)/.cache/onnxruntime/libonnxruntime.so.1.31.1
export ORT_DYLIB_PATH

MODEL := .cache/models/nanodet_g416_coco.onnx
VTEST := .cache/footage/vtest.avi
STILL := .cache/footage/still.mp4
PETS_GT ?= ../shared/eval/PETS09-S2L1/gt.txt

.PHONY: setup setup-aarch64 build aarch64 demo test bench

setup:
	@bash scripts/setup.sh

setup-aarch64:
	@bash scripts/setup.sh --aarch64

build: setup
	cargo build --release --locked --workspace --bins

# aarch64 from this x86_64 machine with Debian's cross tools (scripts/setup.sh --aarch64): Debian's
# rustc-web and its arm64 standard library, gcc-aarch64-linux-gnu to link, the arm64 libraries
# through multiarch. In target/cross/, apart from the x86_64 build (another rustc builds it).
AARCH64 := aarch64-unknown-linux-gnu
CROSS := CARGO_TARGET_DIR=target/cross RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
  CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
  PKG_CONFIG_ALLOW_CROSS=1 \
  PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu=$(CURDIR)/.cache/aarch64/pkgconfig:/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig

aarch64: setup-aarch64
	$(CROSS) cargo build --release --locked --target $(AARCH64) -p xueliang-agent -p xueliang-center --bins
	@echo "aarch64: target/cross/$(AARCH64)/release/xl-agent and xl-center (deploy/*/install.sh take them on an aarch64 box)"

demo: build
	target/release/xl-demo $(DEMO_ARGS)

# The API and workflow suites, run a second time with the center's records in PostgreSQL, with
# every crate's unit tests (the center's use the store) and the center's store suites. Chosen
# over the whole workspace so the build is the one the first run made.
POSTGRES_SUITES := clips vocabulary center_api supervision accounts accountability console enrolment config_push \
  bad_alarms forged_alarms clip_delivery gb28181

# Style first (seconds), then lints, then the suite: a formatting slip or a clippy warning fails it.
# The suite runs under cargo-nextest, each test in a process of its own, two at a time across all
# the test binaries: most of them wait on clocks and peers, not the CPU. Then the center's tests
# and the API and workflow suites again on PostgreSQL, by cargo test, so that each binary's tests
# share one PostgreSQL server. Meanwhile the agent is built for aarch64 (profile emulated:
# unoptimised) at the lowest CPU priority, so it takes only what the tests leave; then its tests
# run under qemu-aarch64 (tests/aarch64.rs, minutes of emulated inference). The tiers' test
# (three counties, a city and a province through a ten-minute cut) mostly waits: it runs beside
# the rest, from the start, and its outcome is the suite's last.
TIERS_TEST := three_counties_forward_through_a_ten_minute_cut
test: setup-aarch64
	@cargo nextest --version >/dev/null 2>&1 || cargo install --locked cargo-nextest
	cargo fmt --all --check
	cargo clippy --locked --workspace --all-targets -- -D warnings
	cargo test --locked --workspace --no-run
	@rm -f .cache/tmp/tiers.rc; tiers=$$(cargo test --locked --test tiers --no-run --message-format=json \
	  2>/dev/null | grep '"name":"tiers"' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p'); \
	  [ -x "$$tiers" ] || { echo "the tiers test was not built"; exit 1; }; \
	  echo "tiers: $$tiers runs beside the rest (.cache/tmp/tiers.log)"; \
	  ( $$tiers --nocapture > .cache/tmp/tiers.log 2>&1; echo $$? > .cache/tmp/tiers.rc ) &
	@rm -f .cache/tmp/aarch64.rc; echo "aarch64: the agent builds beside the rest (.cache/tmp/aarch64.log)"; \
	  ( t0=$$(date +%s); $(CROSS) nice -n 19 cargo build --locked --profile emulated --target $(AARCH64) \
	    -p xueliang-agent --bins > .cache/tmp/aarch64.log 2>&1; rc=$$?; \
	    echo "aarch64: agent built in $$(($$(date +%s) - t0)) s, exit $$rc" >> .cache/tmp/aarch64.log; \
	    echo $$rc > .cache/tmp/aarch64.rc ) &
	cargo nextest run --locked --workspace --no-fail-fast --test-threads 2 \
	  -E 'not test($(TIERS_TEST)) and not binary(aarch64)'
	XL_TEST_STORE=postgres cargo test --locked --workspace --lib $(addprefix --test ,$(POSTGRES_SUITES))
	@status=0; while [ ! -s .cache/tmp/aarch64.rc ]; do sleep 5; done; \
	  if [ "$$(cat .cache/tmp/aarch64.rc)" = 0 ]; then tail -n 1 .cache/tmp/aarch64.log; \
	    cargo test --locked --test aarch64 -- --nocapture || status=1; \
	  else tail -n 30 .cache/tmp/aarch64.log; status=1; fi; rm -f .cache/tmp/aarch64.rc; \
	  while [ ! -s .cache/tmp/tiers.rc ]; do sleep 5; done; cat .cache/tmp/tiers.log; \
	  rc=$$(cat .cache/tmp/tiers.rc); rm -f .cache/tmp/tiers.rc; [ "$$rc" = 0 ] || status=$$rc; exit $$status

# Figures for sizing a box (see docs/performance.md): criterion benches of the per-frame CPU
# work; the inference loop against bare session.run (moving and still scene, 5 repeats) and
# against the usual Python pipeline at equal threads; detection accuracy on PETS09-S2L1, and on
# its people placed far away in a 4 MP picture; INT8 against fp32 and OpenVINO against ONNX
# Runtime's own CPU kernels; how many cameras of each kind the box sustains with the whole
# agent running, and what a burst of events does to the other cameras; the center's ingest, on
# sled and on PostgreSQL, by one center and by two sharing the county; a city center taking in
# the events of 100 counties.
INT8 := .cache/models/nanodet_g416_coco.int8.onnx
OV_LIB := .cache/onnxruntime-openvino/libonnxruntime.so.1.24.1
BENCH_PY := .cache/venv-bench/bin/python

bench: build
	@bash scripts/setup.sh --bench
	cargo bench --locked --bench hot_path
	@test -f $(STILL) || gst-launch-1.0 -q filesrc location=$(VTEST) ! decodebin ! imagefreeze num-buffers=300 ! \
	  videoconvert ! x264enc speed-preset=veryfast ! mp4mux ! filesink location=$(STILL)
	target/release/xl-agent bench --model $(MODEL) --clip $(VTEST) --motion --threads 1
	target/release/xl-agent bench --model $(MODEL) --clip $(STILL) --motion --threads 1
	$(BENCH_PY) benches/python_pipeline.py $(MODEL) $(VTEST) 1 300 5
	target/release/xl-agent bench --model $(MODEL) --clip $(VTEST) --threads 2
	$(BENCH_PY) benches/python_pipeline.py $(MODEL) $(VTEST) 2 300 5
	target/release/xl-agent eval --model $(MODEL) --clip $(VTEST) --gt $(PETS_GT)
	target/release/xl-agent eval --model $(MODEL) --clip $(VTEST) --gt $(PETS_GT) --distant 2560x1440 --distant-scale 0.4
	target/release/xl-agent bench --model $(INT8) --clip $(VTEST) --threads 1
	target/release/xl-agent eval --model $(INT8) --clip $(VTEST) --gt $(PETS_GT)
	target/release/xl-agent bench --model $(MODEL) --clip $(VTEST) --threads 1 --provider openvino --onnxruntime $(OV_LIB)
	target/release/xl-agent eval --model $(MODEL) --clip $(VTEST) --gt $(PETS_GT) --provider openvino --onnxruntime $(OV_LIB)
	target/release/xl-capacity
	target/release/xl-capacity --model $(INT8)
	target/release/xl-capacity --burst --seconds 60 --model $(INT8)
	target/release/xl-ingest-bench
	target/release/xl-ingest-bench --broker mosquitto
	target/release/xl-ingest-bench --snapshot-bytes 102400 --alarms 3000
	target/release/xl-ingest-bench --broker mosquitto --snapshot-bytes 102400 --alarms 3000
	target/release/xl-ingest-bench --store postgres
	target/release/xl-ingest-bench --store postgres --broker mosquitto
	target/release/xl-ingest-bench --store postgres --broker mosquitto --snapshot-bytes 102400 --alarms 3000
	target/release/xl-ingest-bench --store postgres --broker mosquitto --centers 2
	target/release/xl-tier-bench
