# Benchmarks: every scenario in one run against a real Kafka broker and, when a `resonate` binary
# is available, a real Resonate server (else local mode, labelled as such).
# Writes bench/results/<date>.md, <date>.png and latest.md. `make bench BENCH=latency` runs one
# scenario (floor, latency, throughput, hol, recovery, memory); BENCH_ARGS passes more options.
BENCH ?=
BENCH_ARGS ?=
.PHONY: bench
bench: setup ## Benchmarks (floor, latency, throughput, HOL, recovery, memory) → bench/results/<date>.md + .png
	@$(VENV)/python -m bench $(if $(BENCH),--only $(BENCH)) $(BENCH_ARGS)
