#!/usr/bin/env bash
# A real Kubernetes of one or more nodes assembled from the package registries, for machines
# where kind cannot run (no node image, no container registry). Needs root and Debian (apt-get).
#
#   scripts/cluster.sh up               build what is missing, start the control plane and
#                                       CLUSTER_NODES nodes (default 3), wait until all are Ready
#   scripts/cluster.sh images           build the pipeline's and the stand-in images, import them
#                                       into every node
#   scripts/cluster.sh addons           kube-network-policies (NetworkPolicies enforced),
#                                       metrics-server (kubectl top, HPA) and the local-path
#                                       provisioner (default StorageClass `standard`, dynamic
#                                       volumes on each node's disk), from their Go modules
#   scripts/cluster.sh node-stop NAME   stop a node: its kubelet, kube-proxy, containerd and every
#                                       container on it, and cut its network link
#   scripts/cluster.sh node-start NAME  start it again (link, containerd, kubelet, kube-proxy)
#   scripts/cluster.sh nodes            the node names, one a line
#   scripts/cluster.sh down             stop everything it started and delete the cluster's state
#   scripts/cluster.sh status           what runs, and the nodes
#   scripts/cluster.sh env              KUBECONFIG=… and PATH=… to talk to it (eval "$(… env)")
#
# What runs (docs/kubernetes.md, "Without kind"):
#   the control plane, as processes on the machine: etcd, kube-apiserver,
#       kube-controller-manager, kube-scheduler (one multi-call binary from the k8s.io/kubernetes
#       Go module, tools/k8s, v1.34) and CoreDNS (tools/coredns), on the address CLUSTER_API_IP
#       of a bridge of the cluster's own (tombstone0)
#   per node, as kind has one container per node: a network namespace of its own on that bridge
#       (own address and pod CIDR; routes to the other nodes' pod CIDRs), and in it the node's
#       own containerd (own root, state and socket), kubelet (own root dir and cgroup root) and
#       kube-proxy; pods are wired with the ptp CNI plugin. The first node is
#       tombstone-control-plane (tainted NoSchedule when there are workers, as in kind), then
#       tombstone-worker, tombstone-worker2, …
#   containerd, runc, CNI plugins: Debian's packages; the pause image from tools/pause
# Nothing is reachable on these addresses from outside the machine.
# Builds and state live under .cache/ (builds survive `down`; state does not).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONFIG=$ROOT/k8s/cluster
BIN=$ROOT/.cache/bin
STATE=$ROOT/.cache/cluster
RUN=/run/tombstone-cluster                 # sockets: short paths, a tmpfs
NODES_COUNT=${CLUSTER_NODES:-3}
API_IP=${CLUSTER_API_IP:-10.250.0.1}     # the control plane, on the cluster's bridge
NODE_NET=${API_IP%.*}                    # node i has $NODE_NET.(10+i)
BRIDGE=tombstone0
POD_CIDR=10.244.0.0/16                   # node i has 10.244.i.0/24
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
K8S_VERSION=v1.34.4
PKI=$STATE/pki
IMAGE_PREFIX=${IMAGE_PREFIX:-tombstone-}
IMAGE_TAG=${IMAGE_TAG:-dev}
CONTROL_PLANE=(etcd kube-apiserver kube-controller-manager kube-scheduler coredns)
NODE_COMPONENTS=(containerd kubelet kube-proxy)
KEDA=${CLUSTER_KEDA:-0}                   # 1: KEDA too (tens of minutes to build cold: not in CI)
KEDA_VERSION=v2.16.1                     # tools/keda/go.mod
[[ $NODES_COUNT =~ ^[1-9][0-9]?$ ]] || { echo "cluster: CLUSTER_NODES must be 1..99" >&2; exit 2; }

started=$SECONDS
log() { echo "cluster: [$((SECONDS - started))s] $*" >&2; }
die() { log "error: $*"; exit 1; }

wait_for() {  # description, deadline seconds, command…
  local what=$1 deadline=$2
  shift 2
  local until=$((SECONDS + deadline))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= until)); then die "$what: not within ${deadline}s (logs: $STATE/logs)"; fi
    sleep 1
  done
  log "$what"
}

# --- building -------------------------------------------------------------------------------

# Go caches under .cache/ too, so CI's cache and `make clean-cache` cover them.
go_env() { env GOFLAGS=-mod=mod GOMODCACHE="$ROOT/.cache/go/mod" GOCACHE="$ROOT/.cache/go/build" CGO_ENABLED=0 "$@"; }

go_build() {  # module dir, output, ldflags, [package: a main package the module requires]
  local module=$1 out=$2 ldflags=$3 package=${4:-.} stamp="$2.stamp" sum
  sum=$(find "$module" -maxdepth 1 -name 'go.*' -o -maxdepth 1 -name '*.go' | sort | xargs cat | sha256sum | cut -c1-16)
  if [[ -x "$out" && "$(cat "$stamp" 2>/dev/null)" == "$sum" ]]; then return 0; fi
  log "building $(basename "$out") from $module (cold: many minutes on 2 cores)"
  mkdir -p "$BIN"
  local t=$SECONDS
  (cd "$module" && go_env go build -trimpath -ldflags="$ldflags" -o "$out" "$package") || die "build of $module failed"
  echo "$sum" > "$stamp"
  log "built $(basename "$out") in $((SECONDS - t))s"
}

build() {
  command -v go >/dev/null || die "Go is needed to build the cluster's components"
  local ld="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=34 -X $p.gitTreeState=clean"
  done
  go_build "$ROOT/tools/k8s" "$BIN/k8s" "$ld"
  go_build "$ROOT/tools/coredns" "$BIN/coredns" "-s -w"
  go_build "$ROOT/tools/pause" "$BIN/pause" "-s -w"
  # The add-ons: NetworkPolicy enforcement and resource metrics, built from their modules.
  go_build "$ROOT/tools/netpol" "$BIN/kube-network-policies" "-s -w" sigs.k8s.io/kube-network-policies/cmd
  go_build "$ROOT/tools/metrics-server" "$BIN/metrics-server" "-s -w -X k8s.io/client-go/pkg/version.gitVersion=v0.8.0" \
    sigs.k8s.io/metrics-server/cmd/metrics-server
  go_build "$ROOT/tools/local-path-provisioner" "$BIN/local-path-provisioner" "-s -w -X main.VERSION=v0.0.30" \
    github.com/rancher/local-path-provisioner
  if ((KEDA)); then  # many minutes cold: KEDA links every scaler's client library
    go_build "$ROOT/tools/keda" "$BIN/keda" "-s -w -X github.com/kedacore/keda/v2/version.Version=$KEDA_VERSION" \
      github.com/kedacore/keda/v2/cmd/operator
    go_build "$ROOT/tools/keda" "$BIN/keda-adapter" "-s -w -X github.com/kedacore/keda/v2/version.Version=$KEDA_VERSION" \
      github.com/kedacore/keda/v2/cmd/adapter
  fi
  for p in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    ln -sf k8s "$BIN/$p"
  done
}

install_packages() {
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v conntrack >/dev/null || missing+=(conntrack)
  command -v openssl >/dev/null || missing+=(openssl)
  ((${#missing[@]} == 0)) && return 0
  [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null || die "needs root and apt-get to install ${missing[*]}"
  log "installing ${missing[*]} (Debian)"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# --- nodes -----------------------------------------------------------------------------------

# Node i (1-based): name as kind names them (also its network namespace's), its address on the
# bridge, its pod CIDR and the host's end of its link. `up` records the names; later verbs read them.
node_name() { if (($1 == 1)); then echo tombstone-control-plane; elif (($1 == 2)); then echo tombstone-worker; else echo "tombstone-worker$(($1 - 1))"; fi; }
node_ip() { echo "$NODE_NET.$((10 + $1))"; }
node_pod_cidr() { echo "10.244.$1.0/24"; }
node_link() { echo "tsnode$1"; }
node_index() {  # name -> index, from the recorded list
  local i=0 name
  while read -r name; do i=$((i + 1)); [[ "$name" == "$1" ]] && { echo "$i"; return 0; }; done < "$STATE/nodes"
  die "no node $1 (nodes: $(tr '\n' ' ' < "$STATE/nodes"))"
}
nodes() { cat "$STATE/nodes" 2>/dev/null; }
in_node() { local name=$1; shift; nsenter --net="/run/netns/$name" "$@"; }  # net namespace only:
# the node's containerd and kubelet must share the host's mounts (volumes the kubelet mounts).
node_sock() { echo "$RUN/$1/containerd.sock"; }
node_ctr() { local name=$1; shift; ctr --address "$(node_sock "$name")" -n k8s.io "$@"; }

# --- certificates and kubeconfigs -----------------------------------------------------------

cert() {  # name, subject, [subjectAltName], [signing CA: ca]
  local name=$1 subject=$2 san=${3:-}
  [[ -f "$PKI/$name.crt" ]] && return 0
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -subj "$subject" \
    -out "$PKI/$name.csr" 2>/dev/null
  local ext="$PKI/$name.ext"
  { echo "basicConstraints=CA:FALSE"; echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [[ -n "$san" ]]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"
    else echo "extendedKeyUsage=clientAuth"; fi; } > "$ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/${4:-ca}.crt" -CAkey "$PKI/${4:-ca}.key" -CAcreateserial \
    -days 365 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

kubeconfig() {  # name (cert and file)
  local file=$STATE/$1.kubeconfig
  [[ -f "$file" ]] && return 0
  cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: tombstone
    cluster: {server: "https://$API_IP:6443", certificate-authority: "$PKI/ca.crt"}
users:
  - name: $1
    user: {client-certificate: "$PKI/$1.crt", client-key: "$PKI/$1.key"}
contexts:
  - name: tombstone
    context: {cluster: tombstone, user: $1}
current-context: tombstone
EOF
}

ca() {  # name, CN
  [[ -f "$PKI/$1.crt" ]] && return 0
  openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI/$1.key" -subj "/CN=$2" \
    -days 365 -sha256 -out "$PKI/$1.crt" 2>/dev/null
}

pki() {
  mkdir -p "$PKI"
  ca ca tombstone-cluster-ca
  # The aggregation layer: the API server authenticates to extension API servers
  # (metrics-server) with a client certificate of a CA of its own (--requestheader-*).
  ca front-proxy-ca tombstone-front-proxy-ca
  [[ -f "$PKI/sa.key" ]] || { openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null; openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null; }
  cert apiserver "/CN=kube-apiserver" \
    "IP:$API_IP,IP:$API_SERVICE_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  cert front-proxy-client "/CN=front-proxy-client" "" front-proxy-ca
  cert admin "/O=system:masters/CN=tombstone-admin"
  cert kube-controller-manager "/CN=system:kube-controller-manager"
  cert kube-scheduler "/CN=system:kube-scheduler"
  cert kube-proxy "/CN=system:kube-proxy"
  local name
  for name in admin kube-controller-manager kube-scheduler kube-proxy; do kubeconfig "$name"; done
  while read -r name; do
    cert "kubelet-$name" "/O=system:nodes/CN=system:node:$name"
    kubeconfig "kubelet-$name"
  done < "$STATE/nodes"
}

# --- processes -------------------------------------------------------------------------------

pidfile() { echo "$STATE/pids/$1.pid"; }
running() { local p; p=$(cat "$(pidfile "$1")" 2>/dev/null) && kill -0 "$p" 2>/dev/null; }

start() {  # name (a node's: <node>.<component>), command…
  local name=$1
  shift
  if running "$name"; then return 0; fi
  mkdir -p "$STATE/pids" "$STATE/logs"
  setsid nohup "$@" > "$STATE/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$(pidfile "$name")"
}

stop() {  # name
  local name=$1 pid
  pid=$(cat "$(pidfile "$name")" 2>/dev/null) || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$(pidfile "$name")"
}

render() {  # template in k8s/cluster, output, [node index]: substitutes @VARS@ (kube-proxy exits
  local rendered i=${3:-0} name=""  # when its config file changes under it: an unchanged file is left alone)
  ((i > 0)) && name=$(node_name "$i")
  rendered=$(sed -e "s#@STATE@#$STATE#g" -e "s#@RUN@#$RUN#g" -e "s#@API_IP@#$API_IP#g" \
      -e "s#@NODE@#$name#g" -e "s#@NODE_IP@#$( ((i > 0)) && node_ip "$i")#g" \
      -e "s#@NODE_STATE@#$STATE/nodes.d/$name#g" -e "s#@NODE_RUN@#$RUN/$name#g" \
      -e "s#@POD_CIDR@#$POD_CIDR#g" -e "s#@NODE_POD_CIDR@#$( ((i > 0)) && node_pod_cidr "$i")#g" -e "s#@PKI@#$PKI#g" \
      -e "s#@PAUSE_IMAGE@#docker.io/library/${IMAGE_PREFIX}pause:$IMAGE_TAG#g" \
      "$CONFIG/$1")
  [[ -f "$2" && "$(cat "$2")" == "$rendered" ]] || printf '%s\n' "$rendered" > "$2"
}

# The host's own firewall (Docker sets FORWARD's policy to DROP) must let the nodes talk to each
# other over the bridge; these rules admit bridge-to-bridge traffic only.
FORWARD_RULES=("-i $BRIDGE -o $BRIDGE -j ACCEPT")

network() {  # the bridge, the control plane's address on it, and the routes to every pod CIDR
  modprobe br_netfilter 2>/dev/null || true
  modprobe overlay 2>/dev/null || true
  sysctl -qw net.ipv4.ip_forward=1
  ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
  ip link set "$BRIDGE" up
  [[ "$(ip -o addr show dev "$BRIDGE")" == *" $API_IP/24 "* ]] || ip addr add "$API_IP/24" dev "$BRIDGE"
  local rule
  for rule in "${FORWARD_RULES[@]}"; do
    # shellcheck disable=SC2086
    iptables -C FORWARD $rule 2>/dev/null || iptables -I FORWARD 1 $rule
  done
}

node_network() {  # index: the node's namespace, its link to the bridge, its routes
  local i=$1 name; name=$(node_name "$i")
  local link; link=$(node_link "$i")
  [[ -e "/run/netns/$name" ]] || ip netns add "$name"
  if ! ip link show "$link" >/dev/null 2>&1; then
    ip link add "$link" type veth peer name eth0 netns "$name"
    ip link set "$link" master "$BRIDGE"
  fi
  ip link set "$link" up
  ip -n "$name" link set lo up
  ip -n "$name" link set eth0 up
  [[ "$(ip -n "$name" -o addr show dev eth0)" == *" $(node_ip "$i")/24 "* ]] || ip -n "$name" addr add "$(node_ip "$i")/24" dev eth0
  in_node "$name" sysctl -qw net.ipv4.ip_forward=1
  # The node's own processes (hostNetwork pods) need a route to the Service CIDR before
  # kube-proxy's DNAT: a default route to the control plane, as a kind node has one to its
  # Docker network's gateway (the host forwards only from the bridge to the bridge).
  ip -n "$name" route replace default via "$API_IP" dev eth0
  local j
  for ((j = 1; j <= $(wc -l < "$STATE/nodes"); j++)); do
    ip route replace "$(node_pod_cidr "$j")" via "$(node_ip "$j")" dev "$BRIDGE"   # host -> pods
    ((j == i)) || ip -n "$name" route replace "$(node_pod_cidr "$j")" via "$(node_ip "$j")" dev eth0
  done
}

cgroup_root() {  # node name: the kubelet's cgroup root, in every cgroup v1 hierarchy
  local hierarchy
  for hierarchy in /sys/fs/cgroup/*/; do
    [[ -d "$hierarchy" && "$hierarchy" != */unified/ ]] || continue
    mkdir -p "$hierarchy$1"
    if [[ -f "${hierarchy}cpuset.cpus" ]]; then  # an empty cpuset admits no task
      cat "${hierarchy}cpuset.cpus" > "$hierarchy$1/cpuset.cpus"
      cat "${hierarchy}cpuset.mems" > "$hierarchy$1/cpuset.mems"
    fi
  done
}

cgroup_remove() {  # node name: its cgroups, deepest first (they are empty once its containers are)
  local hierarchy
  for hierarchy in /sys/fs/cgroup/*/; do
    [[ -d "$hierarchy$1" ]] && find "$hierarchy$1" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

api() { "$BIN/kubectl" --kubeconfig "$STATE/admin.kubeconfig" "$@"; }
api_ready() { api get --raw /readyz; }
node_ready() {
  [[ "$(api get node "$1" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}
getent_dns() {  # the control plane's CoreDNS answers for a cluster name
  python3 - "$API_IP" "$1" <<'EOF'
import socket, struct, sys
server, name = sys.argv[1], sys.argv[2]
query = struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"".join(
    bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.sendto(query, (server, 53)); reply = s.recv(512)
sys.exit(0 if struct.unpack(">H", reply[6:8])[0] > 0 else 1)
EOF
}

node_start() {  # index: network, containerd, kubelet, kube-proxy of one node
  local i=$1 name; name=$(node_name "$i")
  local dir=$STATE/nodes.d/$name
  mkdir -p "$dir"/{etc,kubelet,pod-logs,cni/net.d,cni/ipam} "$RUN/$name"
  node_network "$i"
  cgroup_root "$name"
  render containerd.toml "$dir/etc/containerd.toml" "$i"
  render cni.conflist "$dir/cni/net.d/10-tombstone.conflist" "$i"
  render kubelet.yaml "$dir/etc/kubelet.yaml" "$i"
  render kube-proxy.yaml "$dir/etc/kube-proxy.yaml" "$i"
  start "$name.containerd" nsenter --net="/run/netns/$name" containerd --config "$dir/etc/containerd.toml"
  wait_for "$name: containerd up" 60 node_ctr "$name" version
  local taints=()
  if ((i == 1 && $(wc -l < "$STATE/nodes") > 1)); then  # as kind: workloads go to the workers
    taints=(--register-with-taints=node-role.kubernetes.io/control-plane:NoSchedule)
  fi
  start "$name.kubelet" nsenter --net="/run/netns/$name" "$BIN/kubelet" --config="$dir/etc/kubelet.yaml" \
    --kubeconfig="$STATE/kubelet-$name.kubeconfig" --hostname-override="$name" \
    --node-ip="$(node_ip "$i")" --root-dir="$dir/kubelet" "${taints[@]}" --v=1
  start "$name.kube-proxy" nsenter --net="/run/netns/$name" "$BIN/kube-proxy" --config="$dir/etc/kube-proxy.yaml"
}

node_stop() {  # index: everything of the node stops, its containers too; its link goes down
  local i=$1 name; name=$(node_name "$i")
  local sock; sock=$(node_sock "$name")
  stop "$name.kubelet"
  stop "$name.kube-proxy"
  if [[ -S "$sock" ]]; then  # the pods' containers outlive the kubelet: kill and remove them
    local c
    for c in $(node_ctr "$name" tasks ls -q 2>/dev/null); do
      node_ctr "$name" tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true
    done
    for c in $(node_ctr "$name" containers ls -q 2>/dev/null); do
      node_ctr "$name" tasks rm -f "$c" >/dev/null 2>&1 || true
      node_ctr "$name" containers rm "$c" >/dev/null 2>&1 || true
    done
  fi
  stop "$name.containerd"
  pkill -f "containerd-shim.*-address $sock" 2>/dev/null || true
  ip link set "$(node_link "$i")" down 2>/dev/null || true
}

label_nodes() {
  local name i=0
  while read -r name; do
    i=$((i + 1))
    if ((i == 1)); then
      api label node "$name" --overwrite node-role.kubernetes.io/control-plane= >/dev/null
    else
      api label node "$name" --overwrite node-role.kubernetes.io/worker= >/dev/null
    fi
  done < "$STATE/nodes"
}

up_failed() {  # an `up` that started a cluster and failed: remove what it started, keep the logs
  local logs=$ROOT/.cache/cluster-failed-logs
  rm -rf "$logs"; cp -r "$STATE/logs" "$logs" 2>/dev/null || true
  log "up failed: stopping what it started (its logs: $logs)"
  down
}

up() {
  [[ $(id -u) -eq 0 ]] || die "the cluster needs root (containerd, kubelet, network)"
  install_packages
  build
  # A cluster that was not there before is removed again when `up` fails half way (processes,
  # node addresses, routes, iptables rules, namespaces); an existing one is left as it is.
  [[ -f "$STATE/nodes" ]] || trap 'status=$?; ((status == 0)) || up_failed; exit $status' EXIT
  mkdir -p "$STATE"/{etc,logs,pids,nodes.d} "$RUN"
  if [[ -f "$STATE/nodes" ]]; then
    (($(wc -l < "$STATE/nodes") == NODES_COUNT)) || die "the cluster has $(wc -l < "$STATE/nodes") nodes, CLUSTER_NODES=$NODES_COUNT: down first"
  else
    local i
    for ((i = 1; i <= NODES_COUNT; i++)); do node_name "$i"; done > "$STATE/nodes"
  fi
  pki
  network
  render Corefile "$STATE/etc/Corefile"

  start etcd "$BIN/etcd" --name tombstone --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster "tombstone=http://127.0.0.1:2380" --listen-metrics-urls http://127.0.0.1:2381
  wait_for "etcd up" 60 curl -fsS http://127.0.0.1:2381/health
  start kube-apiserver "$BIN/kube-apiserver" \
    --advertise-address="$API_IP" --bind-address="$API_IP" --secure-port=6443 \
    --etcd-servers=http://127.0.0.1:2379 --service-cluster-ip-range="$SERVICE_CIDR" \
    --client-ca-file="$PKI/ca.crt" --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --enable-aggregator-routing=true \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --allow-privileged=true \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction --profiling=false
  wait_for "kube-apiserver ready" 120 api_ready
  start kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --cluster-cidr="$POD_CIDR" --profiling=false
  start kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig="$STATE/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$STATE/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$STATE/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --profiling=false
  start coredns "$BIN/coredns" -conf "$STATE/etc/Corefile"

  local i name
  for ((i = 1; i <= NODES_COUNT; i++)); do node_start "$i"; done
  images_pause
  for ((i = 1; i <= NODES_COUNT; i++)); do
    name=$(node_name "$i")
    wait_for "node $name Ready" 180 node_ready "$name"
    wait_for "$name: kube-proxy healthy" 60 in_node "$name" curl -fsS http://127.0.0.1:10256/healthz
  done
  label_nodes
  wait_for "cluster DNS answers" 60 getent_dns kubernetes.default.svc.cluster.local
  trap - EXIT
  log "up: $K8S_VERSION, $NODES_COUNT node(s) ($(tr '\n' ' ' < "$STATE/nodes")); eval \"\$($0 env)\" to use kubectl"
}

# --- images ----------------------------------------------------------------------------------

import_images() {  # image names: into every node's containerd, saved once in one archive (the
  # layers they share, the base image's, are in it once)
  local tar; tar=$(mktemp -p "$STATE" images.XXXXXX.tar)
  docker save -o "$tar" "$@" || die "saving $* failed"
  local name pids=() failed=0 pid
  while read -r name; do  # into the nodes side by side
    node_ctr "$name" images import "$tar" >/dev/null & pids+=($!)
  done < "$STATE/nodes"
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  rm -f "$tar"
  ((failed == 0)) || die "importing $* into the nodes failed"
}

stand_in() {  # name, Dockerfile in k8s/cluster/images, context dir
  local image="${IMAGE_PREFIX}$1:$IMAGE_TAG" t=$SECONDS
  DOCKER_BUILDKIT=0 docker build -q ${BASE_IMAGE:+--build-arg BASE_IMAGE="$BASE_IMAGE"} \
    -f "$CONFIG/images/$2" -t "$image" "$3" >/dev/null || die "building $image failed"
  log "built $image in $((SECONDS - t))s"
}

images_pause() {
  local image="${IMAGE_PREFIX}pause:$IMAGE_TAG" name missing=0
  while read -r name; do
    node_ctr "$name" images ls -q | grep -x "docker.io/library/$image" >/dev/null || missing=1
  done < "$STATE/nodes"
  ((missing)) || return 0
  "$ROOT/scripts/docker-daemon.sh"
  local ctx; ctx=$(mktemp -d); cp "$BIN/pause" "$ctx/"
  stand_in pause pause.Dockerfile "$ctx"
  rm -rf "$ctx"
  import_images "$image"
}

resonate_binary() {
  if [[ -n "${RESONATE_SERVER_BIN:-}" ]]; then echo "$RESONATE_SERVER_BIN"; return; fi
  command -v resonate
}

images() {
  "$ROOT/scripts/docker-daemon.sh"
  local ctx; ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' RETURN
  # Apache Kafka stands in for Redpanda (same jars as the local stack), Jaeger from tools/jaeger.
  local jars; jars=$("$ROOT/.venv/bin/devstack" kafka-jars) || die "resolving the Kafka jars failed"
  mkdir -p "$ctx/kafka"; cp -r "$jars" "$ctx/kafka/libs"; cp "$CONFIG/images/kafka-start.sh" "$ctx/kafka/"
  stand_in kafka kafka.Dockerfile "$ctx/kafka"
  local jaeger; jaeger=$("$ROOT/.venv/bin/devstack" jaeger | sed -n 's/^jaeger: //p') || die "building Jaeger failed"
  mkdir -p "$ctx/jaeger"; cp "$jaeger" "$ctx/jaeger/jaeger"
  stand_in jaeger jaeger.Dockerfile "$ctx/jaeger"
  # PostgreSQL (Debian's package) for the chart's bundled database, standing in for `postgres`.
  mkdir -p "$ctx/postgres"; cp "$CONFIG/images/postgres-start.sh" "$ctx/postgres/"
  stand_in postgres postgres.Dockerfile "$ctx/postgres"
  local wanted=(producer processor topic-init kafka jaeger postgres) server
  if server=$(resonate_binary); then
    mkdir -p "$ctx/resonate"; cp "$server" "$ctx/resonate/resonate"
    stand_in resonate resonate.Dockerfile "$ctx/resonate"
    wanted+=(resonate)
  else
    log "no Resonate server binary (PATH or RESONATE_SERVER_BIN): no server image; the processors will run in LOCAL mode"
  fi
  local name t=$SECONDS refs=()
  for name in "${wanted[@]}"; do refs+=("${IMAGE_PREFIX}$name:$IMAGE_TAG"); done
  import_images "${refs[@]}"
  log "imported ${wanted[*]} into $(wc -l < "$STATE/nodes") node(s) in $((SECONDS - t))s"
}

# --- add-ons ---------------------------------------------------------------------------------

static_image() {  # image name, binary: a FROM-scratch image of one static binary
  local ctx; ctx=$(mktemp -d); cp "$2" "$ctx/binary"
  stand_in "$1" static.Dockerfile "$ctx"
  rm -rf "$ctx"
}

addons() {  # kube-network-policies on every node, metrics-server (k8s/cluster/addons), volumes
  "$ROOT/scripts/docker-daemon.sh"
  local ctx; ctx=$(mktemp -d)
  cp "$BIN/kube-network-policies" "$CONFIG/images/netpol-start.sh" "$ctx/"
  stand_in netpol netpol.Dockerfile "$ctx"
  rm -rf "$ctx"
  static_image metrics-server "$BIN/metrics-server"
  ctx=$(mktemp -d); cp "$BIN/local-path-provisioner" "$ctx/"
  stand_in local-path local-path.Dockerfile "$ctx"
  rm -rf "$ctx"
  import_images "${IMAGE_PREFIX}netpol:$IMAGE_TAG" "${IMAGE_PREFIX}metrics-server:$IMAGE_TAG" "${IMAGE_PREFIX}local-path:$IMAGE_TAG"
  api apply -f "$CONFIG/addons/" >/dev/null
  storage
  wait_for "kube-network-policies on every node" 180 api -n kube-system rollout status daemonset/kube-network-policies --timeout=5s
  wait_for "metrics-server ready" 180 api -n kube-system rollout status deployment/metrics-server --timeout=5s
  wait_for "the metrics API serves every node" 180 metrics_of_every_node
  if ((KEDA)); then keda; fi
}

keda() {  # KEDA's operator and metrics API server (k8s/cluster/keda), from tools/keda
  static_image keda "$BIN/keda"
  static_image keda-adapter "$BIN/keda-adapter"
  import_images "${IMAGE_PREFIX}keda:$IMAGE_TAG" "${IMAGE_PREFIX}keda-adapter:$IMAGE_TAG"
  local upstream; upstream=$(go_env go list -C "$ROOT/tools/keda" -m -f '{{.Dir}}' github.com/kedacore/keda/v2) \
    || die "the KEDA module is not in the module cache (scripts/cluster.sh build)"
  mkdir -p "$STATE/keda"
  cp "$CONFIG/keda/kustomization.yaml" "$STATE/keda/"
  api kustomize "$upstream/config/minimal" > "$STATE/keda/upstream.yaml" || die "rendering KEDA's manifests failed"
  api apply --server-side -k "$STATE/keda" >/dev/null || die "installing KEDA failed"
  wait_for "KEDA's operator ready" 300 api -n keda rollout status deployment/keda-operator --timeout=5s
  wait_for "KEDA's metrics API server ready" 300 api -n keda rollout status deployment/keda-metrics-apiserver --timeout=5s
  wait_for "the external metrics API served" 180 api get --raw /apis/external.metrics.k8s.io/v1beta1
}

storage() {  # the local-path provisioner and the default StorageClass (k8s/cluster/local-path-storage.yaml)
  local name paths=""
  while read -r name; do  # a folder per node: the nodes share the machine's disk
    paths+="${paths:+,}{\"node\":\"$name\",\"paths\":[\"$STATE/nodes.d/$name/local-path\"]}"
  done < "$STATE/nodes"
  sed -e "s#@NODE_PATH_MAP@#[$paths]#" "$CONFIG/local-path-storage.yaml" | api apply -f - >/dev/null
  wait_for "local-path provisioner ready" 180 api -n local-path-storage rollout status deployment/local-path-provisioner --timeout=5s
}

metrics_of_every_node() {
  (($(api get --raw /apis/metrics.k8s.io/v1beta1/nodes | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))') \
     == $(wc -l < "$STATE/nodes")))
}

# --- teardown and status ---------------------------------------------------------------------

down() {
  local name i=0
  if [[ -f "$STATE/nodes" ]]; then
    while read -r name; do i=$((i + 1)); node_stop "$i"; done < "$STATE/nodes"
  fi
  for name in coredns kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$name"; done
  # Pod volumes, and the pods' network namespaces: containerd keeps those under each node's state
  # dir (netns_mounts_under_state_dir), so nothing of the host's /run/netns but the nodes' own.
  findmnt -rno TARGET | grep -E "^($STATE|$RUN)/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  i=0
  if [[ -f "$STATE/nodes" ]]; then
    while read -r name; do
      i=$((i + 1))
      ip link delete "$(node_link "$i")" 2>/dev/null || true
      ip netns delete "$name" 2>/dev/null || true
      cgroup_remove "$name"
    done < "$STATE/nodes"
  fi
  local rule
  for rule in "${FORWARD_RULES[@]}"; do
    # shellcheck disable=SC2086
    iptables -D FORWARD $rule 2>/dev/null || true
  done
  ip link delete "$BRIDGE" 2>/dev/null || true
  rm -rf "$STATE" "$RUN"
  log "down: processes stopped, state deleted (builds in .cache/bin kept)"
}

node_verb() {  # stop|start, node name
  [[ -f "$STATE/nodes" ]] || die "no cluster (scripts/cluster.sh up)"
  [[ -n "${2:-}" ]] || die "which node? ($(tr '\n' ' ' < "$STATE/nodes"))"
  local i; i=$(node_index "$2")
  if [[ $1 == stop ]]; then
    node_stop "$i"
    log "$2 stopped: its containers are gone and its link is down; the control plane sees it NotReady after the node monitor's grace period"
  else
    node_start "$i"
    wait_for "node $2 Ready" 180 node_ready "$2"
  fi
}

status() {
  local name component
  for name in "${CONTROL_PLANE[@]}"; do
    if running "$name"; then printf '%-40s running (pid %s)\n' "$name" "$(cat "$(pidfile "$name")")"
    else printf '%-40s stopped\n' "$name"; fi
  done
  while read -r name; do
    for component in "${NODE_COMPONENTS[@]}"; do
      if running "$name.$component"; then printf '%-40s running (pid %s)\n' "$name.$component" "$(cat "$(pidfile "$name.$component")")"
      else printf '%-40s stopped\n' "$name.$component"; fi
    done
  done < <(nodes)
  [[ -f "$STATE/admin.kubeconfig" ]] && api get nodes -o wide 2>/dev/null || true
}

case "${1:-}" in
  up) up ;;
  images) images ;;
  addons) addons ;;
  down) down ;;
  status) status ;;
  build) build ;;
  nodes) nodes ;;
  node-stop) node_verb stop "${2:-}" ;;
  node-start) node_verb start "${2:-}" ;;
  env) echo "export KUBECONFIG=$STATE/admin.kubeconfig PATH=$BIN:\$PATH" ;;
  *) sed -n '2,18p' "$0" >&2; exit 2 ;;
esac
