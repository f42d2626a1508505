"""What setup-topics asks the broker for: names, compaction, and min.insync.replicas."""

from __future__ import annotations

import pytest

from tombstone_common.settings import load_settings
from tombstone_topic_init.topics import TooFewBrokers, TopicInitSettings, await_brokers, pipeline_topics


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


class GrowingCluster:
    """An admin client whose cluster gains a broker at each metadata request, up to ``most``."""

    def __init__(self, first: int, most: int) -> None:
        self.count, self.most = first - 1, most

    def list_topics(self, timeout: float):
        self.count = min(self.count + 1, self.most)
        return type("Metadata", (), {"brokers": dict.fromkeys(range(self.count))})()


def test_setup_topics_waits_for_as_many_brokers_as_replicas_and_says_so():
    seen = []
    assert await_brokers(GrowingCluster(1, 3), 3, timeout=30, report=seen.append) == 3
    assert seen == [1, 2]


def test_too_few_brokers_in_time_is_refused_naming_the_count_and_the_setting():
    with pytest.raises(TooFewBrokers, match=r"has 1 broker\(s\) after 0s and TOPIC_REPLICATION_FACTOR=3 needs 3"):
        await_brokers(GrowingCluster(1, 1), 3, timeout=0)
