# The pod sandbox image of the single-node cluster (tools/pause, a static binary).
FROM scratch
COPY pause /pause
USER 65535:65535
ENTRYPOINT ["/pause"]
