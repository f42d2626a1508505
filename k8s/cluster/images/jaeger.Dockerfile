# Stand-in for the official Jaeger image on the single-node cluster: the same jaeger binary
# (tools/jaeger, a static build), with the entrypoint the chart assumes (it passes --config).
FROM scratch
COPY jaeger /jaeger
USER 10001:10001
ENTRYPOINT ["/jaeger"]
