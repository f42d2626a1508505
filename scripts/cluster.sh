#!/usr/bin/env bash
# A real single-node Kubernetes assembled from the package registries, for machines where kind
# cannot run (no node image, no container registry). Needs root and Debian (apt-get).
#
#   scripts/cluster.sh up       build what is missing, start the node, wait until it is Ready
#   scripts/cluster.sh images   build the pipeline's and the stand-in images, import them
#   scripts/cluster.sh down     stop everything it started and delete the cluster's state
#   scripts/cluster.sh status   what runs, and the node
#   scripts/cluster.sh env      KUBECONFIG=… and PATH=… to talk to it (eval "$(… env)")
#
# What runs (docs/kubernetes.md, "The single-node cluster"):
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy
#       one multi-call binary from the k8s.io/kubernetes Go module (tools/k8s), v1.34
#   CoreDNS              from its Go module (tools/coredns), on the node, for cluster.local
#   containerd, runc, CNI plugins   Debian's packages; a containerd of its own (own root,
#       state and socket), beside any other on the machine; the pause image from tools/pause
# The node has an address of its own (CLUSTER_NODE_IP, added to the host's `lo`; not a
# 127.x address): the API server must advertise a non-loopback address, and pods reach the
# node's DNS and API there. Nothing is reachable on it from outside the machine.
# Builds and state live under .cache/ (builds survive `down`; state does not).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONFIG=$ROOT/k8s/cluster
BIN=$ROOT/.cache/bin
STATE=$ROOT/.cache/cluster
RUN=/run/tombstone-cluster                 # sockets: short paths, a tmpfs
NODE=${CLUSTER_NODE_NAME:-tombstone-node}
NODE_IP=${CLUSTER_NODE_IP:-10.250.0.1}
POD_CIDR=10.244.0.0/16
NODE_POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
K8S_VERSION=v1.34.4
PKI=$STATE/pki
SOCK=$RUN/containerd.sock
IMAGE_PREFIX=${IMAGE_PREFIX:-tombstone-}
IMAGE_TAG=${IMAGE_TAG:-dev}
COMPONENTS=(etcd containerd kube-apiserver kube-controller-manager kube-scheduler coredns kubelet kube-proxy)

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

go_build() {  # module dir, output, ldflags
  local module=$1 out=$2 ldflags=$3 stamp="$2.stamp" sum
  sum=$(find "$module" -maxdepth 1 -name 'go.*' -o -maxdepth 1 -name '*.go' | sort | xargs cat | sha256sum | cut -c1-16)
  if [[ -x "$out" && "$(cat "$stamp" 2>/dev/null)" == "$sum" ]]; then return 0; fi
  log "building $(basename "$out") from $module (cold: many minutes on 2 cores)"
  mkdir -p "$BIN"
  local t=$SECONDS
  (cd "$module" && go_env go build -trimpath -ldflags="$ldflags" -o "$out" .) || die "build of $module failed"
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

# --- certificates and kubeconfigs -----------------------------------------------------------

cert() {  # name, subject, [subjectAltName]
  local name=$1 subject=$2 san=${3:-}
  [[ -f "$PKI/$name.crt" ]] && return 0
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -subj "$subject" \
    -out "$PKI/$name.csr" 2>/dev/null
  local ext="$PKI/$name.ext"
  { echo "basicConstraints=CA:FALSE"; echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [[ -n "$san" ]]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"
    else echo "extendedKeyUsage=clientAuth"; fi; } > "$ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
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
    cluster: {server: "https://$NODE_IP:6443", certificate-authority: "$PKI/ca.crt"}
users:
  - name: $1
    user: {client-certificate: "$PKI/$1.crt", client-key: "$PKI/$1.key"}
contexts:
  - name: tombstone
    context: {cluster: tombstone, user: $1}
current-context: tombstone
EOF
}

pki() {
  mkdir -p "$PKI"
  if [[ ! -f "$PKI/ca.crt" ]]; then
    openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -subj "/CN=tombstone-cluster-ca" \
      -days 365 -sha256 -out "$PKI/ca.crt" 2>/dev/null
  fi
  [[ -f "$PKI/sa.key" ]] || { openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null; openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null; }
  cert apiserver "/CN=kube-apiserver" \
    "IP:$NODE_IP,IP:$API_SERVICE_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  cert admin "/O=system:masters/CN=tombstone-admin"
  cert kubelet "/O=system:nodes/CN=system:node:$NODE"
  cert kube-controller-manager "/CN=system:kube-controller-manager"
  cert kube-scheduler "/CN=system:kube-scheduler"
  cert kube-proxy "/CN=system:kube-proxy"
  local name
  for name in admin kubelet kube-controller-manager kube-scheduler kube-proxy; do kubeconfig "$name"; done
}

# --- processes -------------------------------------------------------------------------------

pidfile() { echo "$STATE/pids/$1.pid"; }
running() { local p; p=$(cat "$(pidfile "$1")" 2>/dev/null) && kill -0 "$p" 2>/dev/null; }

start() {  # name, command…
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

render() {  # template in k8s/cluster, output: substitutes @VARS@ (kube-proxy exits when its
  local rendered  # config file changes under it, so an unchanged file is left alone)
  rendered=$(sed -e "s#@STATE@#$STATE#g" -e "s#@RUN@#$RUN#g" -e "s#@NODE@#$NODE#g" -e "s#@NODE_IP@#$NODE_IP#g" \
      -e "s#@POD_CIDR@#$POD_CIDR#g" -e "s#@NODE_POD_CIDR@#$NODE_POD_CIDR#g" -e "s#@PKI@#$PKI#g" \
      -e "s#@PAUSE_IMAGE@#docker.io/library/${IMAGE_PREFIX}pause:$IMAGE_TAG#g" \
      "$CONFIG/$1")
  [[ -f "$2" && "$(cat "$2")" == "$rendered" ]] || printf '%s\n' "$rendered" > "$2"
}

network() {
  modprobe br_netfilter 2>/dev/null || true
  modprobe overlay 2>/dev/null || true
  sysctl -qw net.ipv4.ip_forward=1
  [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] && sysctl -qw net.bridge.bridge-nf-call-iptables=1
  if [[ "$(ip -o addr show dev lo)" != *" $NODE_IP/32 "* ]]; then
    ip addr add "$NODE_IP/32" dev lo label lo:tombstone
  fi
}

api_ready() { "$BIN/kubectl" --kubeconfig "$STATE/admin.kubeconfig" get --raw /readyz; }
node_ready() {
  [[ "$("$BIN/kubectl" --kubeconfig "$STATE/admin.kubeconfig" get node "$NODE" \
        -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}
dns_ready() { "$BIN/kubectl" --kubeconfig "$STATE/admin.kubeconfig" get --raw /api >/dev/null && \
  getent_dns kubernetes.default.svc.cluster.local; }
getent_dns() {  # the node's CoreDNS answers for a cluster name
  python3 - "$NODE_IP" "$1" <<'EOF'
import socket, struct, sys
server, name = sys.argv[1], sys.argv[2]
query = struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"".join(
    bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.sendto(query, (server, 53)); reply = s.recv(512)
sys.exit(0 if struct.unpack(">H", reply[6:8])[0] > 0 else 1)
EOF
}

up() {
  [[ $(id -u) -eq 0 ]] || die "the cluster needs root (containerd, kubelet, network)"
  install_packages
  build
  mkdir -p "$STATE"/{etc,logs,pids,volumes,cni/net.d,cni/ipam} "$RUN"
  pki
  network

  render containerd.toml "$STATE/etc/containerd.toml"
  render cni.conflist "$STATE/cni/net.d/10-tombstone.conflist"
  render kubelet.yaml "$STATE/etc/kubelet.yaml"
  render kube-proxy.yaml "$STATE/etc/kube-proxy.yaml"
  render Corefile "$STATE/etc/Corefile"

  start etcd "$BIN/etcd" --name "$NODE" --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster "$NODE=http://127.0.0.1:2380" --listen-metrics-urls http://127.0.0.1:2381
  start containerd containerd --config "$STATE/etc/containerd.toml"
  wait_for "etcd up" 60 curl -fsS http://127.0.0.1:2381/health
  start kube-apiserver "$BIN/kube-apiserver" \
    --advertise-address="$NODE_IP" --bind-address="$NODE_IP" --secure-port=6443 \
    --etcd-servers=http://127.0.0.1:2379 --service-cluster-ip-range="$SERVICE_CIDR" \
    --client-ca-file="$PKI/ca.crt" --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
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
  wait_for "containerd up" 60 ctr --address "$SOCK" version
  start kubelet "$BIN/kubelet" --config="$STATE/etc/kubelet.yaml" --kubeconfig="$STATE/kubelet.kubeconfig" \
    --hostname-override="$NODE" --node-ip="$NODE_IP" --root-dir="$STATE/kubelet" --v=1
  start kube-proxy "$BIN/kube-proxy" --config="$STATE/etc/kube-proxy.yaml"
  images_pause
  wait_for "node $NODE Ready" 180 node_ready
  wait_for "cluster DNS answers" 60 getent_dns kubernetes.default.svc.cluster.local
  wait_for "kube-proxy healthy" 60 curl -fsS http://127.0.0.1:10256/healthz
  storage
  log "up: $K8S_VERSION, node $NODE ($NODE_IP); eval \"\$($0 env)\" to use kubectl"
}

storage() {  # a StorageClass of node-local volumes and a few hostPath PVs for it
  local i manifests=""
  for i in 1 2 3 4; do
    mkdir -p "$STATE/volumes/pv$i"
    chmod 0777 "$STATE/volumes/pv$i"
    manifests+=$(sed -e "s#@NAME@#tombstone-pv$i#" -e "s#@PATH@#$STATE/volumes/pv$i#" "$CONFIG/volume.yaml")
    manifests+=$'\n---\n'
  done
  printf '%s' "$manifests" | "$BIN/kubectl" --kubeconfig "$STATE/admin.kubeconfig" apply -f "$CONFIG/storageclass.yaml" -f - >/dev/null
}

# --- images ----------------------------------------------------------------------------------

import_image() {  # image name
  docker save "$1" | ctr --address "$SOCK" -n k8s.io images import - >/dev/null \
    || die "importing $1 into the cluster failed"
}

stand_in() {  # name, Dockerfile in k8s/cluster/images, context dir
  local image="${IMAGE_PREFIX}$1:$IMAGE_TAG" t=$SECONDS
  DOCKER_BUILDKIT=0 docker build -q ${BASE_IMAGE:+--build-arg BASE_IMAGE="$BASE_IMAGE"} \
    -f "$CONFIG/images/$2" -t "$image" "$3" >/dev/null || die "building $image failed"
  log "built $image in $((SECONDS - t))s"
}

images_pause() {
  local image="${IMAGE_PREFIX}pause:$IMAGE_TAG"
  if ctr --address "$SOCK" -n k8s.io images ls -q | grep -x "docker.io/library/$image" >/dev/null; then return 0; fi
  "$ROOT/scripts/docker-daemon.sh"
  local ctx; ctx=$(mktemp -d); cp "$BIN/pause" "$ctx/"
  stand_in pause pause.Dockerfile "$ctx"
  rm -rf "$ctx"
  import_image "$image"
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
  local wanted=(producer processor topic-init kafka jaeger) server
  if server=$(resonate_binary); then
    mkdir -p "$ctx/resonate"; cp "$server" "$ctx/resonate/resonate"
    stand_in resonate resonate.Dockerfile "$ctx/resonate"
    wanted+=(resonate)
  else
    log "no Resonate server binary (PATH or RESONATE_SERVER_BIN): no server image; the processors will run in LOCAL mode"
  fi
  local name t=$SECONDS
  for name in "${wanted[@]}"; do import_image "${IMAGE_PREFIX}$name:$IMAGE_TAG"; done
  log "imported ${wanted[*]} in $((SECONDS - t))s"
}

# --- teardown and status ---------------------------------------------------------------------

down() {
  local name
  for name in kubelet kube-proxy; do stop "$name"; done
  if [[ -S "$SOCK" ]]; then  # the pods' containers outlive the kubelet: remove them
    local c
    for c in $(ctr --address "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$SOCK" -n k8s.io tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true
    done
    for c in $(ctr --address "$SOCK" -n k8s.io containers ls -q 2>/dev/null); do
      ctr --address "$SOCK" -n k8s.io tasks rm -f "$c" >/dev/null 2>&1 || true
      ctr --address "$SOCK" -n k8s.io containers rm "$c" >/dev/null 2>&1 || true
    done
  fi
  [[ -x "$BIN/kube-proxy" ]] && "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
  for name in coredns kube-scheduler kube-controller-manager kube-apiserver containerd etcd; do stop "$name"; done
  pkill -f "containerd-shim.*-address $SOCK" 2>/dev/null || true
  # Pod volumes and network namespaces the kubelet and CNI mounted.
  findmnt -rno TARGET | grep -E "^($STATE|$RUN)/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  local netns
  for netns in $(ip netns list 2>/dev/null | awk '/^cni-/ {print $1}'); do ip netns delete "$netns" 2>/dev/null || true; done
  ip link delete cni0 2>/dev/null || true
  ip addr del "$NODE_IP/32" dev lo 2>/dev/null || true
  rm -rf "$STATE" "$RUN"
  log "down: processes stopped, state deleted (builds in .cache/bin kept)"
}

status() {
  local name
  for name in "${COMPONENTS[@]}"; do
    if running "$name"; then printf '%-24s running (pid %s)\n' "$name" "$(cat "$(pidfile "$name")")"
    else printf '%-24s stopped\n' "$name"; fi
  done
  [[ -f "$STATE/admin.kubeconfig" ]] && "$BIN/kubectl" --kubeconfig "$STATE/admin.kubeconfig" get nodes -o wide 2>/dev/null || true
}

case "${1:-}" in
  up) up ;;
  images) images ;;
  down) down ;;
  status) status ;;
  build) build ;;
  env) echo "export KUBECONFIG=$STATE/admin.kubeconfig PATH=$BIN:\$PATH" ;;
  *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
