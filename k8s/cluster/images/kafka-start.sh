#!/bin/sh
# Start a KRaft broker (broker and controller in one process) whose data lives in /data (its
# volume: the root filesystem is read-only). The storage is formatted only when the volume is
# new: a restarted broker keeps its topics and consumer offsets.
#
# One broker (KAFKA_REPLICAS unset or 1): it is its own quorum; clients are told
# KAFKA_ADVERTISED_HOST (the Service name).
# Several (KAFKA_REPLICAS=N, pods kafka-0 … kafka-N-1 of a StatefulSet): node.id is the pod's
# ordinal, the voters are every pod by its name under the headless Service KAFKA_PEERS_DOMAIN
# (which publishes not-ready addresses, so peers resolve before they are ready), the cluster id
# is KAFKA_CLUSTER_ID (the same on every pod), and each broker advertises its own pod name. The
# broker's own topics are replicated min(N, 3) times, all but one in sync.
set -euf  # -f: the classpath wildcard is for java, not the shell
PORT=9092
CONTROLLER_PORT=9093
REPLICAS="${KAFKA_REPLICAS:-1}"
mkdir -p /data/logs /data/tmp
if [ "$REPLICAS" -eq 1 ]; then
  : "${KAFKA_ADVERTISED_HOST:?set KAFKA_ADVERTISED_HOST to the broker Service's DNS name}"
  NODE_ID=1
  QUORUM="controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT"
  CONTROLLER_LISTENER="CONTROLLER://127.0.0.1:$CONTROLLER_PORT"
  ADVERTISED="$KAFKA_ADVERTISED_HOST"
  CLUSTER_ID="$(tr -d - < /proc/sys/kernel/random/uuid | head -c 22)"
  FORMAT_MODE="--standalone"
  COPIES=1
else
  : "${POD_NAME:?set POD_NAME (metadata.name: kafka-<ordinal>)}"
  : "${KAFKA_PEERS_DOMAIN:?set KAFKA_PEERS_DOMAIN to the headless Service DNS name}"
  : "${KAFKA_CLUSTER_ID:?set KAFKA_CLUSTER_ID: 22 characters, the same on every broker}"
  NODE_ID="${POD_NAME##*-}"
  STATEFULSET="${POD_NAME%-*}"
  VOTERS=""
  i=0
  while [ "$i" -lt "$REPLICAS" ]; do
    VOTERS="${VOTERS:+$VOTERS,}$i@$STATEFULSET-$i.$KAFKA_PEERS_DOMAIN:$CONTROLLER_PORT"
    i=$((i + 1))
  done
  QUORUM="controller.quorum.voters=$VOTERS"
  CONTROLLER_LISTENER="CONTROLLER://:$CONTROLLER_PORT"
  ADVERTISED="$POD_NAME.$KAFKA_PEERS_DOMAIN"
  CLUSTER_ID="$KAFKA_CLUSTER_ID"
  FORMAT_MODE=""   # the voters are in the configuration
  COPIES=$(( REPLICAS < 3 ? REPLICAS : 3 ))
fi
IN_SYNC=$(( COPIES > 1 ? COPIES - 1 : 1 ))
# KAFKA_TLS_DIR (ca.crt, tls.crt with its chain, tls.key in PKCS#8; tests/cluster/test_secured.py),
# one broker only: clients get mutual TLS on PORT instead of plaintext, and the broker keeps a
# plaintext listener for itself on loopback.
pem() { awk '{printf "%s\\n", $0}' "$1"; }  # a PEM file as one properties line
if [ -n "${KAFKA_TLS_DIR:-}" ]; then
  [ "$REPLICAS" -eq 1 ] || { echo "KAFKA_TLS_DIR: one broker only" >&2; exit 2; }
  LISTENERS="SSL://:$PORT,INTERNAL://127.0.0.1:9095,$CONTROLLER_LISTENER"
  ADVERTISED_LISTENERS="SSL://$ADVERTISED:$PORT,INTERNAL://127.0.0.1:9095"
  INTER_BROKER=INTERNAL
  PROTOCOLS="SSL:SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
  TLS="ssl.keystore.type=PEM
ssl.keystore.certificate.chain=$(pem "$KAFKA_TLS_DIR/tls.crt")
ssl.keystore.key=$(pem "$KAFKA_TLS_DIR/tls.key")
ssl.truststore.type=PEM
ssl.truststore.certificates=$(pem "$KAFKA_TLS_DIR/ca.crt")
ssl.client.auth=required"
else
  LISTENERS="PLAINTEXT://:$PORT,$CONTROLLER_LISTENER"
  ADVERTISED_LISTENERS="PLAINTEXT://$ADVERTISED:$PORT"
  INTER_BROKER=PLAINTEXT
  PROTOCOLS="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  TLS=""
fi
cat > /data/server.properties <<PROPS
process.roles=broker,controller
node.id=$NODE_ID
$QUORUM
listeners=$LISTENERS
advertised.listeners=$ADVERTISED_LISTENERS
controller.listener.names=CONTROLLER
inter.broker.listener.name=$INTER_BROKER
listener.security.protocol.map=$PROTOCOLS
$TLS
log.dirs=/data/logs
num.partitions=1
default.replication.factor=$COPIES
min.insync.replicas=$IN_SYNC
offsets.topic.replication.factor=$COPIES
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=$COPIES
transaction.state.log.min.isr=$IN_SYNC
share.coordinator.state.topic.replication.factor=$COPIES
share.coordinator.state.topic.min.isr=$IN_SYNC
group.initial.rebalance.delay.ms=0
# a broker that returns leads its preferred partitions again within seconds, not 5 minutes
leader.imbalance.check.interval.seconds=10
auto.create.topics.enable=false
PROPS
cat > /data/log4j2.properties <<PROPS
rootLogger.level=INFO
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=kafka
logger.kafka.level=WARN
logger.state.name=state.change.logger
logger.state.level=WARN
PROPS
JAVA="java -Xms256m -Xmx512m -XX:-UsePerfData -Djava.io.tmpdir=/data/tmp -Dlog4j2.configurationFile=/data/log4j2.properties -Dkafka.logs.dir=/data/logs -cp /opt/kafka/libs/*"
if [ ! -f /data/logs/meta.properties ]; then
  # shellcheck disable=SC2086  # FORMAT_MODE is empty or one flag
  $JAVA kafka.tools.StorageTool format -t "$CLUSTER_ID" -c /data/server.properties $FORMAT_MODE --ignore-formatted
fi
exec $JAVA kafka.Kafka /data/server.properties
