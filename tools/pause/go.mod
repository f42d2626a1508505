// The pod sandbox process for the single-node cluster (scripts/cluster.sh).
module tombstone-pipeline/tools/pause

go 1.24.0
