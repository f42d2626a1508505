// metrics-server for the cluster of scripts/cluster.sh (kubectl top, the HPA): its command is
// built from this module's requirement (go build sigs.k8s.io/metrics-server/cmd/metrics-server).
module tombstone-pipeline/tools/metrics-server

go 1.24.4

require sigs.k8s.io/metrics-server v0.8.0
