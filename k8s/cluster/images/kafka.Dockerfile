# Apache Kafka (KRaft, one node) standing in for Redpanda on the single-node cluster: the jars
# the local stack uses (Maven Central), a Debian JRE, and kafka-start.sh.
ARG BASE_IMAGE=python:3.13-slim-trixie
FROM ${BASE_IMAGE}
# (The JRE's postinst links its man page: the slim base has no man folder.)
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openjdk-21-jre-headless \
 && rm -rf /var/lib/apt/lists/*
COPY libs /opt/kafka/libs
COPY kafka-start.sh /opt/kafka/kafka-start.sh
USER 10001:10001
ENTRYPOINT ["/opt/kafka/kafka-start.sh"]
