"""Where the data lives: the Resonate server on SQLite or PostgreSQL (the chart's or yours), the
broker on a volume by default, and stateful pods that a chart version bump alone does not restart."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.chart.manifests import (
    CHART,
    NAMESPACE,
    RELEASE,
    RenderError,
    env_of,
    find,
    helm,
    main_container,
    one,
    pod_template,
    render,
    workload,
)
from tests.chart.test_wiring import allowed_components

POSTGRES_ON = ["resonate.storage.type=postgres", "postgresql.enabled=true"]


def arg(container: dict, flag: str) -> str | None:
    return next((a.split("=", 1)[1] for a in container.get("args", []) if a.startswith(flag + "=")), None)


def expand(container: dict, name: str) -> str:
    """An env value with the $(VAR) references Kubernetes expands from earlier entries."""
    value = env_of(container)[name]["value"]
    for earlier in container["env"]:
        if earlier["name"] == name:
            break
        value = value.replace(f"$({earlier['name']})", f"<{earlier['name']}>")
    return value


# ---- the Resonate server's store --------------------------------------------------------------

def test_sqlite_is_the_default_store_on_its_claim() -> None:
    docs = render("default")
    server = workload(docs, "resonate")
    container = main_container(server)
    assert arg(container, "--storage-sqlite-path") == "/data/resonate.db"
    assert arg(container, "--storage-type") is None
    claim = one(docs, "PersistentVolumeClaim", "resonate")
    volume = next(v for v in server.spec["volumes"] if v["name"] == "data")
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert not [c for c in server.spec.get("initContainers", [])]
    assert not find(docs, "StatefulSet", "postgresql")


def test_the_charts_postgresql_serves_the_server_with_the_password_from_its_secret() -> None:
    docs = render("default", sets=POSTGRES_ON + ["resonate.storage.postgres.poolSize=25"])
    server = workload(docs, "resonate")
    container = main_container(server)
    assert arg(container, "--storage-type") == "postgres"
    assert arg(container, "--storage-postgres-url") == "$(POSTGRES_URL)"
    assert arg(container, "--storage-postgres-pool-size") == "25"
    assert arg(container, "--storage-sqlite-path") is None
    service = one(docs, "Service", "postgresql")
    host = f"{service['metadata']['name']}.{NAMESPACE}.svc"
    assert expand(container, "POSTGRES_URL") == (
        f"postgres://resonate:<POSTGRES_PASSWORD>@{host}:5432/resonate?sslmode=disable"
    )
    secret = one(docs, "Secret", "postgresql")
    password_ref = env_of(container)["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password_ref == {"name": secret["metadata"]["name"], "key": "password"}
    assert len(secret["data"]["password"]) > 0
    database = main_container(workload(docs, "postgresql"))
    assert env_of(database)["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == password_ref
    assert env_of(database)["POSTGRES_USER"]["value"] == "resonate"
    assert env_of(database)["POSTGRES_DB"]["value"] == "resonate"
    # nothing of SQLite's: no claim, no data volume
    assert not find(docs, "PersistentVolumeClaim", "resonate")
    assert "data" not in {v["name"] for v in server.spec["volumes"]}


def test_the_server_starts_only_after_its_database_accepts_connections() -> None:
    docs = render("default", sets=POSTGRES_ON)
    server = workload(docs, "resonate")
    wait = next(c for c in server.spec["initContainers"] if c["name"] == "wait-for-database")
    script = wait["args"][0]
    assert 'pg_isready --quiet --timeout=5 --dbname="$POSTGRES_URL"' in script
    assert "exit 1" in script  # gives up after the deadline instead of waiting for ever
    # the init container needs no password: its URL has none and it reads no Secret
    assert "POSTGRES_PASSWORD" not in env_of(wait)
    assert "<POSTGRES_PASSWORD>" not in expand(wait, "POSTGRES_URL")
    off = workload(render("default", sets=POSTGRES_ON + ["resonate.storage.postgres.waitForDatabase.enabled=false"]), "resonate")
    assert not off.spec.get("initContainers")


def test_a_database_of_yours_by_url_from_a_secret() -> None:
    docs = render("postgres")
    server = workload(docs, "resonate")
    ref = {"name": "resonate-database", "key": "url"}
    for container in (main_container(server), server.spec["initContainers"][0]):
        assert env_of(container)["POSTGRES_URL"]["valueFrom"]["secretKeyRef"] == ref, container["name"]
    assert arg(main_container(server), "--storage-postgres-pool-size") == "20"
    assert not find(docs, "StatefulSet", "postgresql") and not find(docs, "Secret")


def test_a_database_of_yours_by_parts() -> None:
    sets = ["resonate.storage.type=postgres", "resonate.storage.postgres.host=db.example.com",
            "resonate.storage.postgres.passwordSecret=db-login", "resonate.storage.postgres.passwordKey=pw",
            "resonate.storage.postgres.user=app", "resonate.storage.postgres.database=promises",
            "resonate.storage.postgres.sslMode=verify-full"]
    container = main_container(workload(render("default", sets=sets), "resonate"))
    assert expand(container, "POSTGRES_URL") == (
        "postgres://app:<POSTGRES_PASSWORD>@db.example.com:5432/promises?sslmode=verify-full"
    )
    assert env_of(container)["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "db-login", "key": "pw"}


@pytest.mark.parametrize(("sets", "message"), [
    (["resonate.storage.type=postgres"], "needs a database"),
    (["postgresql.enabled=true"], "set resonate.storage.type=postgres"),
    (POSTGRES_ON + ["resonate.storage.postgres.existingSecret=mine"], "leave resonate.storage.postgres.existingSecret"),
    (["resonate.storage.type=postgres", "resonate.storage.postgres.host=db"], "passwordSecret is required"),
    (["resonate.storage.type=mysql"], "type"),
])
def test_inconsistent_storage_values_fail_to_render(sets, message) -> None:
    with pytest.raises(RenderError, match=message):
        render("default", sets=sets)


def test_the_charts_postgresql_keeps_its_password_and_uses_an_existing_secret() -> None:
    generated = one(render("default", sets=POSTGRES_ON), "Secret", "postgresql")
    assert generated["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    given = one(render("default", sets=POSTGRES_ON + ["postgresql.auth.password=s3cret"]), "Secret", "postgresql")
    assert given["data"]["password"] == "czNjcmV0"  # base64 of s3cret
    docs = render("default", sets=POSTGRES_ON + ["postgresql.auth.existingSecret=pg-login"])
    assert not find(docs, "Secret", "postgresql")
    database = main_container(workload(docs, "postgresql"))
    assert env_of(database)["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "pg-login"


def test_the_charts_postgresql_keeps_its_data_on_a_claim_with_a_read_only_root() -> None:
    docs = render("default", sets=POSTGRES_ON + ["postgresql.persistence.size=3Gi",
                                                 "postgresql.persistence.storageClass=fast"])
    statefulset = one(docs, "StatefulSet", "postgresql")
    claim = statefulset["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "3Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    container = main_container(workload(docs, "postgresql"))
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/var/lib/postgresql/data"] == claim["metadata"]["name"]
    assert env_of(container)["PGDATA"]["value"].startswith("/var/lib/postgresql/data/")
    assert "/var/run/postgresql" in mounts  # socket and lock file, off the read-only root
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    pod = workload(docs, "postgresql").spec["securityContext"]
    assert pod["runAsUser"] == 999 and pod["runAsNonRoot"] is True


def test_only_the_resonate_server_reaches_the_charts_postgresql() -> None:
    docs = render("full")
    policy = one(docs, "NetworkPolicy", "postgresql")
    assert allowed_components(policy) == {"resonate"}
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": "postgres"}]


# ---- the broker keeps its data ----------------------------------------------------------------

def test_the_broker_keeps_its_data_on_a_claim_by_default() -> None:
    statefulset = one(render("default"), "StatefulSet", "redpanda")
    claim = statefulset["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert "storageClassName" not in claim["spec"]  # the cluster's default class
    volumes = {v["name"] for v in statefulset["spec"]["template"]["spec"]["volumes"]}
    assert claim["metadata"]["name"] not in volumes  # not shadowed by an emptyDir
    full = one(render("full"), "StatefulSet", "redpanda")["spec"]["volumeClaimTemplates"][0]
    assert full["spec"]["storageClassName"] == "fast-ssd"
    assert full["spec"]["resources"]["requests"]["storage"] == "5Gi"


# ---- a chart version bump does not restart the stateful pods -----------------------------------

STATEFUL = ("redpanda", "resonate", "postgresql")


def render_chart_version(tmp_path: Path, version: str, *sets: str) -> list[dict]:
    chart = tmp_path / f"chart-{version}"
    shutil.copytree(CHART, chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["version"] = meta["appVersion"] = version
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))
    args = ["template", RELEASE, str(chart), "--namespace", NAMESPACE]
    for item in sets:
        args += ["--set", item]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def pod_templates(docs: list[dict]) -> dict[str, dict]:
    return {c: pod_template(workload(docs, c).manifest) for c in STATEFUL}


def test_a_chart_version_bump_leaves_the_stateful_pod_templates_alone(tmp_path) -> None:
    before = render_chart_version(tmp_path, "0.1.0", *POSTGRES_ON)
    after = render_chart_version(tmp_path, "0.2.0", *POSTGRES_ON)
    assert pod_templates(after) == pod_templates(before)
    # the bump did reach the chart: the (stateless) processor's labels carry it
    assert workload(after, "processor").pod_labels["helm.sh/chart"] == "tombstone-pipeline-0.2.0"
    assert workload(before, "processor").pod_labels["helm.sh/chart"] == "tombstone-pipeline-0.1.0"
    for docs in (before, after):
        for c in STATEFUL:
            labels = pod_template(workload(docs, c).manifest)["metadata"]["labels"]
            assert "helm.sh/chart" not in labels and "app.kubernetes.io/version" not in labels, c
            # the objects themselves still say which chart made them
            assert workload(docs, c).manifest["metadata"]["labels"]["helm.sh/chart"].startswith("tombstone-pipeline-")


@pytest.mark.parametrize(("comp", "change"), [
    ("redpanda", "redpanda.memory=3G"),
    ("redpanda", "redpanda.persistence.size=20Gi"),
    ("resonate", "resonate.storage.postgres.poolSize=30"),
    ("resonate", "resonate.taskRetryTimeoutMs=7000"),
    ("postgresql", "postgresql.resources.limits.memory=2Gi"),
])
def test_a_change_of_a_stateful_components_config_changes_its_checksum(comp, change) -> None:
    sets = POSTGRES_ON

    def checksum(docs) -> str:
        return pod_template(workload(docs, comp).manifest)["metadata"]["annotations"]["checksum/config"]

    assert checksum(render("default", sets=[*sets, change])) != checksum(render("default", sets=sets))
    for other in [c for c in STATEFUL if c != comp]:  # and only its own
        assert (pod_template(workload(render("default", sets=[*sets, change]), other).manifest)
                == pod_template(workload(render("default", sets=sets), other).manifest)), other
