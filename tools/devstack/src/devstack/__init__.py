"""Local development stack: a Kafka broker, a Resonate server and Jaeger as plain processes."""
