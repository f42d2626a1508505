# An image of one static Go binary of the cluster's add-ons (kube-network-policies,
# metrics-server; scripts/cluster.sh builds them from their Go modules): FROM scratch, the
# binary as ENTRYPOINT.
FROM scratch
COPY binary /binary
ENTRYPOINT ["/binary"]
