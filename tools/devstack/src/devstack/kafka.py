"""Apache Kafka (KRaft) from Maven Central jars: one broker, or a replicated cluster of a few.

Apache Kafka stands in for Redpanda locally: same wire protocol. The jars are resolved once
with Maven (downloaded from Maven Central when ``mvn`` is not installed) into a cache folder.
A broker can also open TLS listeners (:class:`BrokerTls`): TLS, TLS with client certificates
(mTLS) and SASL_SSL with SCRAM users, beside its plaintext one.
"""

from __future__ import annotations

import base64
import fcntl
import shutil
import subprocess
import sys
import tarfile
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from devstack.procs import Managed, StackError, free_port, port_open

MAVEN_VERSION = "3.9.16"
MAVEN_URL = (
    "https://repo1.maven.org/maven2/org/apache/maven/apache-maven/"
    f"{MAVEN_VERSION}/apache-maven-{MAVEN_VERSION}-bin.tar.gz"
)
#: Development: a small heap, and only the quick C1 compiler, so that a broker of its own starts
#: in a few seconds for every test session. Its steady-state CPU is higher than a real broker's.
JVM_OPTIONS = ["-Xms256m", "-Xmx512m", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"]
#: What Kafka's own start script gives a broker (kafka-run-class.sh, kafka-server-start.sh): both
#: JIT compilers, G1 with short pauses, a 1 GiB heap. The benchmarks run their broker with these,
#: so that its CPU per record is what a production broker spends.
JVM_PRODUCTION_OPTIONS = [
    "-Xms1g", "-Xmx1g", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent", "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
]


def _resource(name: str) -> str:
    return resources.files("devstack.resources").joinpath(name).read_text()


def java_binary() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError("Java 17+ is needed for the local Kafka broker (Debian: apt-get install openjdk-17-jre-headless)")
    return java


def _maven(cache: Path) -> str:
    mvn = shutil.which("mvn")
    if mvn:
        return mvn
    home = cache / f"apache-maven-{MAVEN_VERSION}"
    if not (home / "bin" / "mvn").exists():
        print(f"downloading Maven {MAVEN_VERSION} from Maven Central …", flush=True)
        cache.mkdir(parents=True, exist_ok=True)
        archive = cache / "maven.tar.gz"
        urllib.request.urlretrieve(MAVEN_URL, archive)
        with tarfile.open(archive) as tar:
            tar.extractall(cache, filter="data")
        archive.unlink()
        (home / "bin" / "mvn").chmod(0o755)
    return str(home / "bin" / "mvn")


def ensure_jars(cache: Path) -> Path:
    """Resolve the broker's jars into ``cache/kafka-libs`` (once) and return that folder. Several
    processes may ask at once (make test's lanes on a fresh checkout): one resolves, the others
    wait for it on a lock file."""
    cache = cache.resolve()
    libs = cache / "kafka-libs"
    if any(libs.glob("kafka_2.13-*.jar")):
        return libs
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "kafka-libs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if any(libs.glob("kafka_2.13-*.jar")):  # resolved by another process meanwhile
            return libs
        return _resolve_jars(cache, libs)


def _resolve_jars(cache: Path, libs: Path) -> Path:
    java_binary()
    work = cache / "kafka-pom"
    work.mkdir(parents=True, exist_ok=True)
    (work / "pom.xml").write_text(_resource("kafka-pom.xml"))
    # (stderr: `devstack kafka-jars` prints the folder on stdout, which scripts read)
    print("resolving Kafka broker jars from Maven Central (first run only) …", file=sys.stderr, flush=True)
    partial = cache / "kafka-libs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    result = subprocess.run(
        [_maven(cache), "-q", "-B", "-Dstyle.color=never", "dependency:copy-dependencies",
         "-DincludeScope=runtime", f"-DoutputDirectory={partial}"],
        cwd=work, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise StackError(f"resolving Kafka jars failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    partial.rename(libs)
    return libs


def _cluster_id() -> str:
    """A base64 UUID, as Kafka wants it; never starting with "-" (it would read as an option)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if cluster_id[0].isalnum():
            return cluster_id


#: SCRAM mechanisms of the SASL_SSL listener; every SCRAM user gets credentials for each.
SCRAM_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")


@dataclass(frozen=True)
class BrokerTls:
    """What a broker's TLS listeners need, as PEM files (Kafka 4 reads PEM itself, no keystore):
    its certificate chain and unencrypted PKCS#8 key, the CA certificates it accepts client
    certificates from (the mTLS listener), and the SCRAM users of the SASL_SSL listener (name to
    password), created when the storage is formatted. A password must not contain ``"``."""

    certificate_chain: Path
    key: Path
    client_ca: Path
    scram_users: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TlsPorts:
    """The TLS listeners' ports: ``ssl`` (server certificate only), ``mtls`` (a client certificate
    is required) and ``sasl_ssl`` (SCRAM over TLS)."""

    ssl: int
    mtls: int
    sasl_ssl: int

    @classmethod
    def free(cls) -> TlsPorts:
        return cls(free_port(), free_port(), free_port())


def _property_value(pem: str) -> str:
    """PEM text as one line of a Java properties file (newlines escaped)."""
    return pem.strip().replace("\\", "\\\\").replace("\n", "\\n")


class KafkaBroker:
    """One combined broker+controller on loopback, data and logs under ``home``: a cluster of its
    own, or (``voters``, ``cluster_id``) node ``node_id`` of a :class:`KafkaCluster`.

    With ``tls``, it also listens on ``tls_ports`` (free ones by default): see :class:`BrokerTls`.
    The plaintext listener stays (between brokers, and for tests that read what arrived)."""

    def __init__(
        self,
        home: Path,
        cache: Path,
        port: int = 9092,
        controller_port: int = 9093,
        node_id: int = 1,
        voters: str | None = None,
        cluster_id: str | None = None,
        nodes: int = 1,
        jvm_options: list[str] | None = None,
        tls: BrokerTls | None = None,
        tls_ports: TlsPorts | None = None,
    ) -> None:
        self.home = home.resolve()
        self.cache = cache.resolve()
        self.port = port
        self.controller_port = controller_port
        self.node_id = node_id
        self.voters = voters
        self.cluster_id = cluster_id
        self.nodes = nodes
        self.jvm_options = JVM_OPTIONS if jvm_options is None else jvm_options
        self.tls = tls
        self.tls_ports = (tls_ports or TlsPorts.free()) if tls else None
        self.process = Managed("kafka", home)

    @classmethod
    def on_free_ports(
        cls, home: Path, cache: Path, jvm_options: list[str] | None = None, tls: BrokerTls | None = None
    ) -> KafkaBroker:
        """A broker of its own (tests, benchmarks): free loopback ports, next to any other."""
        return cls(home, cache, port=free_port(), controller_port=free_port(), jvm_options=jvm_options, tls=tls)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _tls_listener(self, port: int | None) -> str:
        if port is None:
            raise StackError("this broker has no TLS listeners (start it with tls=BrokerTls(...))")
        return f"127.0.0.1:{port}"

    @property
    def ssl_bootstrap_servers(self) -> str:
        """The TLS listener (security protocol SSL, no client certificate asked)."""
        return self._tls_listener(self.tls_ports and self.tls_ports.ssl)

    @property
    def mtls_bootstrap_servers(self) -> str:
        """The mTLS listener (security protocol SSL, a client certificate is required)."""
        return self._tls_listener(self.tls_ports and self.tls_ports.mtls)

    @property
    def sasl_ssl_bootstrap_servers(self) -> str:
        """The SASL_SSL listener (SCRAM-SHA-512 or SCRAM-SHA-256 over TLS)."""
        return self._tls_listener(self.tls_ports and self.tls_ports.sasl_ssl)

    def _listener_lines(self) -> list[str]:
        plain = f"PLAINTEXT://127.0.0.1:{self.port}"
        controller = f"CONTROLLER://127.0.0.1:{self.controller_port}"
        if self.tls is None:
            return [
                f"listeners={plain},{controller}",
                f"advertised.listeners={plain}",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            ]
        ports = self.tls_ports
        secure = (
            f"SSL://127.0.0.1:{ports.ssl},MTLS://127.0.0.1:{ports.mtls},"
            f"SASL_SSL://127.0.0.1:{ports.sasl_ssl}"
        )
        scram_login = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        return [
            f"listeners={plain},{controller},{secure}",
            f"advertised.listeners={plain},{secure}",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,MTLS:SSL,"
            "SASL_SSL:SASL_SSL",
            # PEM inline (its newlines escaped): no key store file, no store password
            "ssl.keystore.type=PEM",
            f"ssl.keystore.certificate.chain={_property_value(self.tls.certificate_chain.read_text())}",
            f"ssl.keystore.key={_property_value(self.tls.key.read_text())}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.certificates={_property_value(self.tls.client_ca.read_text())}",
            "listener.name.mtls.ssl.client.auth=required",
            f"listener.name.sasl_ssl.sasl.enabled.mechanisms={','.join(SCRAM_MECHANISMS)}",
            *(f"listener.name.sasl_ssl.{m.lower()}.sasl.jaas.config={scram_login}" for m in SCRAM_MECHANISMS),
        ]

    def _scram_arguments(self) -> list[str]:
        """``--add-scram`` for each SCRAM user and mechanism, for the storage tool's format."""
        users = self.tls.scram_users if self.tls else {}
        arguments = []
        for name, password in users.items():
            if '"' in password or '"' in name:
                raise StackError(f"SCRAM user {name!r}: a name or password must not contain '\"'")
            for mechanism in SCRAM_MECHANISMS:
                arguments += ["--add-scram", f'{mechanism}=[name="{name}",password="{password}"]']
        return arguments

    def _write_config(self) -> Path:
        config = self.home / "server.properties"
        quorum = (
            f"controller.quorum.voters={self.voters}" if self.voters
            else f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}"
        )
        # the broker's own topics (consumer offsets, transactions): on every node, all but one in sync
        replicas, insync = self.nodes, max(1, self.nodes - 1)
        config.write_text(
            "\n".join([
                "process.roles=broker,controller",
                f"node.id={self.node_id}",
                quorum,
                *self._listener_lines(),
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={self.home / 'data'}",
                "num.partitions=1",
                "default.replication.factor=1",
                "min.insync.replicas=1",
                f"offsets.topic.replication.factor={replicas}",
                "offsets.topic.num.partitions=1",
                f"transaction.state.log.replication.factor={replicas}",
                f"transaction.state.log.min.isr={insync}",
                f"share.coordinator.state.topic.replication.factor={replicas}",
                f"share.coordinator.state.topic.min.isr={insync}",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "num.network.threads=2",
                "num.io.threads=2",
                "log.cleaner.backoff.ms=1000",
                "",
            ])
        )
        (self.home / "log4j2.xml").write_text(_resource("kafka-log4j2.xml"))
        return config

    def _java(self, libs: Path, *args: str) -> list[str]:
        return [
            java_binary(), *self.jvm_options,
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.xml'}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            "-cp", f"{libs}/*", *args,
        ]

    def start(self, timeout: float = 90.0) -> None:
        if self.process.running():
            return
        libs = ensure_jars(self.cache)
        self.home.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        if not (self.home / "data" / "meta.properties").exists():
            # a node of a cluster: the voters are in its configuration; alone: it is the quorum
            alone = [] if self.voters else ["--standalone"]
            subprocess.run(
                self._java(libs, "kafka.tools.StorageTool", "format", "-t", self.cluster_id or _cluster_id(),
                           "-c", str(config), *alone, *self._scram_arguments(), "--ignore-formatted"),
                check=True, capture_output=True,
            )
        ports = [self.port, *((self.tls_ports.ssl, self.tls_ports.mtls, self.tls_ports.sasl_ssl) if self.tls_ports else ())]
        self.process.start(
            self._java(libs, "kafka.Kafka", str(config)), lambda: all(port_open(p) for p in ports), timeout
        )

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()


class KafkaCluster:
    """``size`` combined broker+controllers on loopback forming one cluster, as a replicated
    Redpanda does: topics with replicas on several nodes, and a node that can be lost."""

    def __init__(self, home: Path, cache: Path, size: int = 3) -> None:
        ports = [(free_port(), free_port()) for _ in range(size)]
        voters = ",".join(f"{n}@127.0.0.1:{controller}" for n, (_, controller) in enumerate(ports, 1))
        cluster_id = _cluster_id()
        self.brokers = [
            KafkaBroker(home / f"node{n}", cache, port, controller, node_id=n, voters=voters,
                        cluster_id=cluster_id, nodes=size)
            for n, (port, controller) in enumerate(ports, 1)
        ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(broker.bootstrap_servers for broker in self.brokers)

    def start(self, timeout: float = 120.0) -> None:
        """Every node side by side: a node answers only once a majority of the voters is up."""
        ensure_jars(self.brokers[0].cache)
        with ThreadPoolExecutor(len(self.brokers)) as pool:
            for started in [pool.submit(broker.start, timeout) for broker in self.brokers]:
                started.result()

    def stop(self) -> None:
        """Every node killed: stopped one by one, the last ones lose the controllers' quorum and
        wait out their controlled shutdown (30 s) for nothing, as no cluster is started again
        from their data."""
        for broker in self.brokers:
            broker.kill()
