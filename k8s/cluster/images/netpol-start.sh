#!/bin/sh
# Starts kube-network-policies in a node's network namespace (a hostNetwork pod), and steers the
# pods' new connections to its nfqueue with iptables rules of its own. Upstream installs an
# nftables `queue` rule for that, which kernels built without CONFIG_NFT_QUEUE refuse ("No such
# file or directory"); the iptables NFQUEUE target (xt_NFQUEUE) hands the same packets to the
# same queue, at the same place (POSTROUTING, before SNAT), with upstream's exceptions: the
# node's own root processes (kubelet probes) and established connections. The verdicts are
# kube-network-policies' own. The rules go when the enforcer stops.
set -eu
: "${POD_CIDR:?set POD_CIDR to the cluster's pod CIDR}"
QUEUE=${NFQUEUE_ID:-98}
CHAIN=TOMBSTONE-NETPOL

remove_rules() {
  iptables -t mangle -D POSTROUTING -j "$CHAIN" 2>/dev/null || true
  iptables -t mangle -F "$CHAIN" 2>/dev/null || true
  iptables -t mangle -X "$CHAIN" 2>/dev/null || true
}

remove_rules
iptables -t mangle -N "$CHAIN"
iptables -t mangle -A "$CHAIN" -m owner --uid-owner 0 -j RETURN
iptables -t mangle -A "$CHAIN" -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
iptables -t mangle -A "$CHAIN" -s "$POD_CIDR" -j NFQUEUE --queue-num "$QUEUE"
iptables -t mangle -A "$CHAIN" -d "$POD_CIDR" -j NFQUEUE --queue-num "$QUEUE"
iptables -t mangle -A POSTROUTING -j "$CHAIN"

/usr/local/bin/kube-network-policies --nfqueue-id="$QUEUE" "$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT
status=0
wait "$pid" || status=$?
if kill -0 "$pid" 2>/dev/null; then wait "$pid" || status=$?; fi  # (a signal interrupted the first wait)
remove_rules
exit "$status"
