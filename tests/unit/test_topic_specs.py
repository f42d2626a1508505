"""What setup-topics asks the broker for: names, compaction, and min.insync.replicas."""

from __future__ import annotations

import pytest

from tombstone_common.settings import load_settings
from tombstone_topic_init.topics import TopicInitSettings, pipeline_topics


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env file
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    for name in ("TOPIC_REPLICATION_FACTOR", "TOPIC_MIN_INSYNC_REPLICAS"):
        monkeypatch.delenv(name, raising=False)


def configs(settings: TopicInitSettings) -> dict[str, dict[str, str]]:
    return {spec.name: spec.config for spec in pipeline_topics(settings)}


def test_without_min_insync_replicas_the_broker_default_applies():
    assert configs(load_settings(TopicInitSettings)) == {
        "tombstones": {},
        "processed": {"cleanup.policy": "compact"},
        "tombstones.dlq": {},
    }


def test_min_insync_replicas_is_set_on_every_topic(monkeypatch):
    monkeypatch.setenv("TOPIC_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("TOPIC_MIN_INSYNC_REPLICAS", "2")
    assert configs(load_settings(TopicInitSettings)) == {
        "tombstones": {"min.insync.replicas": "2"},
        "processed": {"min.insync.replicas": "2", "cleanup.policy": "compact"},
        "tombstones.dlq": {"min.insync.replicas": "2"},
    }


def test_more_in_sync_replicas_than_replicas_is_refused_naming_both(monkeypatch, capsys):
    monkeypatch.setenv("TOPIC_REPLICATION_FACTOR", "1")
    monkeypatch.setenv("TOPIC_MIN_INSYNC_REPLICAS", "2")
    with pytest.raises(SystemExit) as exit_:
        load_settings(TopicInitSettings)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "TOPIC_MIN_INSYNC_REPLICAS (2) exceeds TOPIC_REPLICATION_FACTOR (1)" in err
