# kube-network-policies (tools/netpol, a static build) for every node of the cluster, with
# iptables for netpol-start.sh, which steers the pods' packets to its queue.
ARG BASE_IMAGE=python:3.13-slim-trixie
FROM ${BASE_IMAGE}
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/*
COPY kube-network-policies /usr/local/bin/kube-network-policies
COPY netpol-start.sh /usr/local/bin/netpol-start.sh
ENTRYPOINT ["/usr/local/bin/netpol-start.sh"]
