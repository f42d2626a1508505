// kube-network-policies (the NetworkPolicy enforcer kind ships) for the cluster of
// scripts/cluster.sh: its command is built from this module's requirement
// (go build sigs.k8s.io/kube-network-policies/cmd), not copied.
module tombstone-pipeline/tools/netpol

go 1.24.0

require sigs.k8s.io/kube-network-policies v0.8.0
