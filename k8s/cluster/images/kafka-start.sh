#!/bin/sh
# Start a single-node KRaft broker whose data lives in /data (its volume: the root filesystem
# is read-only). The storage is formatted only when the volume is new: a restarted broker keeps
# its topics and consumer offsets. KAFKA_ADVERTISED_HOST is the address clients are told to use (the Service name).
set -euf  # -f: the classpath wildcard is for java, not the shell
: "${KAFKA_ADVERTISED_HOST:?set KAFKA_ADVERTISED_HOST to the broker Service's DNS name}"
PORT=9092
mkdir -p /data/logs /data/tmp
cat > /data/server.properties <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:9093
listeners=PLAINTEXT://:$PORT,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://$KAFKA_ADVERTISED_HOST:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=/data/logs
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
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
  $JAVA kafka.tools.StorageTool format -t "$(cat /proc/sys/kernel/random/uuid | tr -d - | head -c 22)" \
    -c /data/server.properties --standalone --ignore-formatted
fi
exec $JAVA kafka.Kafka /data/server.properties
