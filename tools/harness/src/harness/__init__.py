"""What the tests and the benchmarks share: topics and producers on a real broker
(:mod:`harness.kafka`, :mod:`harness.topics`), processors as separate processes
(:mod:`harness.processes`), the delete ledger (:mod:`harness.ledger`) and small statistics
(:mod:`harness.stats`, :mod:`harness.procfs`)."""
