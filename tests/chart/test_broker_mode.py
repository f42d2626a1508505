"""The chart's Redpanda: production mode (fsync, no write caching) unless developer mode is asked for."""

from __future__ import annotations

import copy

import pytest

from tests.chart.manifests import RenderError, Workload, main_container, render, workload



def durability_problems(broker: Workload) -> list[str]:
    """Why this broker would acknowledge a record before it is on disk (empty = production mode)."""
    problems = []
    args = main_container(broker)["args"]
    for arg in args:
        # dev-container mode bundles --unsafe-bypass-fsync and write caching
        if arg.startswith("--mode") or (arg.startswith("--unsafe-bypass-fsync") and not arg.endswith("=false")):
            problems.append(f"starts with {arg}")
        if "write_caching_default" in arg and not arg.endswith(("=false", "=disabled")):
            problems.append(f"sets {arg}")
    # Without a redpanda.yaml of developer_mode: false, rpk itself picks dev-container mode.
    init = [c for c in broker.spec.get("initContainers", []) if c["name"] == "production-mode"]
    if not init:
        problems.append("no production-mode init container")
    else:
        if init[0]["command"] != ["rpk", "redpanda", "mode", "production"]:
            problems.append(f"production-mode runs {init[0]['command']}")
        config_of = {c["name"]: {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
                     for c in (init[0], main_container(broker))}
        if config_of["production-mode"].get("/etc/redpanda") != config_of["redpanda"].get("/etc/redpanda"):
            problems.append("production-mode does not write the broker's /etc/redpanda")
    return problems


@pytest.mark.parametrize("values", ["default", "full", "postgres"])
def test_the_broker_runs_in_production_mode_by_default(values: str) -> None:
    broker = workload(render(values), "redpanda")
    assert not durability_problems(broker)
    assert not any(a.startswith("--mode") for a in main_container(broker)["args"])


@pytest.mark.parametrize("change", ["dev-flag", "write-caching", "no-init", "other-volume"])
def test_the_durability_check_catches_a_development_setting(change: str) -> None:
    broker = copy.deepcopy(workload(render("default"), "redpanda"))
    container = main_container(broker)
    if change == "dev-flag":
        container["args"].append("--unsafe-bypass-fsync")
    elif change == "write-caching":
        container["args"] += ["--set", "redpanda.write_caching_default=true"]
    elif change == "no-init":
        broker.spec["initContainers"] = []
    else:
        broker.spec["initContainers"][0]["volumeMounts"][0]["name"] = "tmp"
    assert durability_problems(broker)


def test_kind_values_keep_developer_mode() -> None:
    broker = workload(render("kind"), "redpanda")
    assert "--mode=dev-container" in main_container(broker)["args"]
    assert "initContainers" not in broker.spec
    assert durability_problems(broker)


def test_developer_mode_is_a_value() -> None:
    broker = workload(render("default", sets=["redpanda.developerMode=true"]), "redpanda")
    assert main_container(broker)["args"][0] == "--mode=dev-container"
    assert "--overprovisioned" not in main_container(broker)["args"], "the mode sets it itself"


def test_overprovisioned_on_shared_cpus_unless_turned_off() -> None:
    assert "--overprovisioned" in main_container(workload(render("default"), "redpanda"))["args"]
    dedicated = render("default", sets=["redpanda.overprovisioned=false"])
    args = main_container(workload(dedicated, "redpanda"))["args"]
    assert "--overprovisioned" not in args and not durability_problems(workload(dedicated, "redpanda"))


@pytest.mark.parametrize("sets", [
    ["redpanda.memory=768M"],
    ["redpanda.memory=1G", "redpanda.smp=2"],
    ["redpanda.memory=1000M"],
])
def test_production_mode_needs_a_gigabyte_per_core(sets: list[str]) -> None:
    with pytest.raises(RenderError, match="below the 1G per core"):
        render("default", sets=sets)


@pytest.mark.parametrize("sets", [
    ["redpanda.memory=1G"],
    ["redpanda.memory=2048M", "redpanda.smp=2"],
    ["redpanda.memory=768M", "redpanda.developerMode=true"],
    ["redpanda.memory=768M", "redpanda.enabled=false", "kafka.bootstrapServers=b:9092"],
])
def test_enough_memory_or_developer_mode_renders(sets: list[str]) -> None:
    render("default", sets=sets)


def test_the_memory_check_reads_every_unit() -> None:
    args = main_container(workload(render("default", sets=["redpanda.memory=1048576K"]), "redpanda"))["args"]
    assert "--memory=1048576K" in args
    with pytest.raises(RenderError, match="below the 1G per core"):
        render("default", sets=["redpanda.memory=1048575K"])
