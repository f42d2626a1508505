"""setup-topics: create the pipeline's topics, idempotently."""
