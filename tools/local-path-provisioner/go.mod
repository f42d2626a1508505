// The local-path provisioner that kind uses (dynamic PersistentVolumes on a node's disk) for the
// cluster of scripts/cluster.sh: its command is built from this module's requirement
// (go build github.com/rancher/local-path-provisioner).
module tombstone-pipeline/tools/local-path-provisioner

go 1.24.4

require github.com/rancher/local-path-provisioner v0.0.30
