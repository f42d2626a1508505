import os

import pytest

from tombstone_common.settings import KafkaSettings, load_settings
from tombstone_processor.settings import ProcessorSettings


SASL = ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD")
FULL_SASL = {"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env file
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "RESONATE_URL", "PROCESSOR_MAX_IN_FLIGHT", *SASL):
        monkeypatch.delenv(name, raising=False)


def test_missing_bootstrap_servers_names_the_variable(capsys):
    with pytest.raises(SystemExit) as exit_:
        load_settings(KafkaSettings)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "KAFKA_BOOTSTRAP_SERVERS is required" in err


@pytest.mark.parametrize(
    "name,value,expected",
    [
        ("KAFKA_BOOTSTRAP_SERVERS", "localhost", "KAFKA_BOOTSTRAP_SERVERS"),
        ("RESONATE_URL", "not a url", "RESONATE_URL"),
        ("PROCESSOR_MAX_IN_FLIGHT", "-1", "PROCESSOR_MAX_IN_FLIGHT"),
        ("DELETE_ERROR_RATE", "1.5", "DELETE_ERROR_RATE"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, capsys, name, value, expected):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit):
        load_settings(ProcessorSettings)
    err = capsys.readouterr().err
    assert err.startswith("error: invalid configuration:")
    assert expected in err


def test_sasl_settings_reach_the_client_config(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "a:1, b:2")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "u")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "p")
    config = load_settings(KafkaSettings).kafka_client_config()
    assert config == {
        "bootstrap.servers": "a:1,b:2",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "u",
        "sasl.password": "p",
    }


def test_local_mode_when_resonate_url_is_unset(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    assert not load_settings(ProcessorSettings).durable
    monkeypatch.setenv("RESONATE_URL", "http://127.0.0.1:8001")
    assert load_settings(ProcessorSettings).durable


def test_dotenv_completes_the_environment_and_real_variables_win(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text(
        "KAFKA_BOOTSTRAP_SERVERS=from-file:1\nOTEL_SERVICE_NAME=from-file\nTOPIC_DLQ=file-dlq\n"
    )
    monkeypatch.setenv("TOPIC_DLQ", "env-dlq")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    try:
        settings = load_settings(ProcessorSettings)
        assert settings.kafka_bootstrap_servers == "from-file:1"
        assert settings.topic_dlq == "env-dlq"
        assert os.environ["OTEL_SERVICE_NAME"] == "from-file", "visible to OpenTelemetry too"
    finally:
        for name in ("KAFKA_BOOTSTRAP_SERVERS", "OTEL_SERVICE_NAME"):
            os.environ.pop(name, None)


def _combinations():
    """Every protocol with every subset of the three SASL variables: (protocol, set, bad variable)."""
    import itertools

    for protocol in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        for size in range(4):
            for given in itertools.combinations(FULL_SASL, size):
                if protocol.startswith("SASL"):
                    missing = [name for name in FULL_SASL if name not in given]
                    yield protocol, given, missing[0] if missing else None
                else:
                    yield protocol, given, given[0] if given else None


@pytest.mark.parametrize("protocol,given,bad", list(_combinations()))
def test_every_sasl_and_tls_combination_is_checked_at_start(monkeypatch, capsys, protocol, given, bad):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", protocol)
    for name in given:
        monkeypatch.setenv(name, FULL_SASL[name])
    if bad is None:
        config = load_settings(KafkaSettings).kafka_client_config()
        assert config["security.protocol"] == protocol
        assert ("sasl.mechanism" in config) == protocol.startswith("SASL")
        return
    with pytest.raises(SystemExit) as exit_:
        load_settings(KafkaSettings)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"error: invalid configuration: {bad} ")
    assert "Value error" not in err and "Traceback" not in err
