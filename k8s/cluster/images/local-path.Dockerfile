# The local-path provisioner (tools/local-path-provisioner) on the Debian base: its helper pods,
# which create and remove the volumes' folders on the nodes, run this image too and need `sh`,
# `mkdir` and `rm` (kind's helper image is a busybox).
ARG BASE_IMAGE=python:3.13-slim-trixie
FROM ${BASE_IMAGE}
COPY local-path-provisioner /usr/local/bin/local-path-provisioner
ENTRYPOINT ["/usr/local/bin/local-path-provisioner"]
