# Benchmarks (issue 6): every scenario in one run against a real Kafka broker and, when a
# `resonate` binary is available, a real Resonate server (else local mode, labelled as such).
# Writes bench/results/<date>.md, <date>.png and latest.md; under 15 minutes on 2 cores.
BENCH_ARGS ?=
.PHONY: bench
bench: setup ## Benchmarks (HOL, throughput, recovery, memory) → bench/results/<date>.md + .png
	@$(VENV)/python -m bench $(BENCH_ARGS)
