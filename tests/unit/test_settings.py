import os

import pytest

from tombstone_common.settings import KafkaSettings, load_settings
from tombstone_processor.mode import DURABLE, LOCAL, Mode
from tombstone_processor.settings import ProcessorSettings


SASL = ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD")
FULL_SASL = {"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}
TLS = (
    "KAFKA_SSL_CA_LOCATION", "KAFKA_SSL_CERTIFICATE_LOCATION", "KAFKA_SSL_KEY_LOCATION",
    "KAFKA_SSL_KEY_PASSWORD", "KAFKA_SSL_ENDPOINT_IDENTIFICATION",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env file
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "RESONATE_URL", "PROCESSOR_MAX_IN_FLIGHT", *SASL, *TLS):
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
        "ssl.endpoint.identification.algorithm": "https",
    }


def test_local_mode_when_resonate_url_is_unset(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    assert Mode.of(load_settings(ProcessorSettings)) is LOCAL
    monkeypatch.setenv("RESONATE_URL", "http://127.0.0.1:8001")
    assert Mode.of(load_settings(ProcessorSettings)) is DURABLE


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


# --- TLS -------------------------------------------------------------------------------------


@pytest.fixture
def pem_files(tmp_path) -> dict[str, str]:
    """Files standing in for the PEM files (their content is librdkafka's business)."""
    files = {}
    for name in ("ca.pem", "client.pem", "client-key.pem"):
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n")
        files[name] = str(tmp_path / name)
    return files


def invalid_line(monkeypatch, capsys, env: dict[str, str]) -> str:
    """The one line ``load_settings`` exits 2 with, for ``env``."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9093")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_:
        load_settings(KafkaSettings)
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: invalid configuration: ")
    assert "Value error" not in lines[0] and "Traceback" not in lines[0]
    return lines[0]


def test_tls_settings_reach_the_client_config(monkeypatch, pem_files):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9093")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("KAFKA_SSL_CA_LOCATION", pem_files["ca.pem"])
    monkeypatch.setenv("KAFKA_SSL_CERTIFICATE_LOCATION", pem_files["client.pem"])
    monkeypatch.setenv("KAFKA_SSL_KEY_LOCATION", pem_files["client-key.pem"])
    monkeypatch.setenv("KAFKA_SSL_KEY_PASSWORD", "key-secret")
    monkeypatch.setenv("KAFKA_SSL_ENDPOINT_IDENTIFICATION", "none")
    assert load_settings(KafkaSettings).kafka_client_config() == {
        "bootstrap.servers": "broker:9093",
        "security.protocol": "SSL",
        "ssl.ca.location": pem_files["ca.pem"],
        "ssl.certificate.location": pem_files["client.pem"],
        "ssl.key.location": pem_files["client-key.pem"],
        "ssl.key.password": "key-secret",
        "ssl.endpoint.identification.algorithm": "none",
    }


def test_tls_without_options_uses_the_system_cas_and_checks_the_host_name(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9093")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    for name in TLS:  # empty, as a template that renders every variable leaves them
        monkeypatch.setenv(name, "")
    assert load_settings(KafkaSettings).kafka_client_config() == {
        "bootstrap.servers": "broker:9093",
        "security.protocol": "SSL",
        "ssl.endpoint.identification.algorithm": "https",
    }


def test_plaintext_config_has_no_tls_property(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    assert not any(key.startswith("ssl.") for key in load_settings(KafkaSettings).kafka_client_config())


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
@pytest.mark.parametrize("variable", TLS)
def test_tls_options_need_a_tls_protocol(monkeypatch, capsys, pem_files, protocol, variable):
    env = {"KAFKA_SECURITY_PROTOCOL": protocol, **(FULL_SASL if protocol.startswith("SASL") else {})}
    value = {"KAFKA_SSL_ENDPOINT_IDENTIFICATION": "https", "KAFKA_SSL_KEY_PASSWORD": "x"}.get(variable, pem_files["ca.pem"])
    line = invalid_line(monkeypatch, capsys, {**env, variable: value})
    assert line.endswith(
        f"{variable} is set but KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS (use SSL or SASL_SSL)"
    )


@pytest.mark.parametrize(
    "given,missing",
    [
        ("KAFKA_SSL_CERTIFICATE_LOCATION", "KAFKA_SSL_KEY_LOCATION"),
        ("KAFKA_SSL_KEY_LOCATION", "KAFKA_SSL_CERTIFICATE_LOCATION"),
    ],
)
def test_client_certificate_and_key_go_together(monkeypatch, capsys, pem_files, given, missing):
    line = invalid_line(monkeypatch, capsys, {"KAFKA_SECURITY_PROTOCOL": "SSL", given: pem_files["client.pem"]})
    assert line.endswith(f"{given} is set without {missing}: a client certificate needs both")


def test_a_key_password_needs_a_key(monkeypatch, capsys):
    line = invalid_line(monkeypatch, capsys, {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEY_PASSWORD": "pw-secret"})
    assert line.endswith("KAFKA_SSL_KEY_PASSWORD is set without KAFKA_SSL_KEY_LOCATION")
    assert "pw-secret" not in line


@pytest.mark.parametrize("variable", ["KAFKA_SSL_CA_LOCATION", "KAFKA_SSL_CERTIFICATE_LOCATION", "KAFKA_SSL_KEY_LOCATION"])
def test_a_missing_file_names_the_variable_and_the_path(monkeypatch, capsys, pem_files, tmp_path, variable):
    env = {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", **{**FULL_SASL, "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"},
        "KAFKA_SSL_CA_LOCATION": pem_files["ca.pem"],
        "KAFKA_SSL_CERTIFICATE_LOCATION": pem_files["client.pem"],
        "KAFKA_SSL_KEY_LOCATION": pem_files["client-key.pem"],
    }
    missing = tmp_path / "certs" / "gone.pem"
    line = invalid_line(monkeypatch, capsys, {**env, variable: str(missing)})
    assert line.endswith(f"{variable}={missing}: no such file")


def test_a_folder_is_not_a_pem_file(monkeypatch, capsys, tmp_path):
    line = invalid_line(monkeypatch, capsys, {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": str(tmp_path)})
    assert line.endswith(f"KAFKA_SSL_CA_LOCATION={tmp_path}: not a file")


def test_an_unreadable_file_names_the_variable_and_the_path(monkeypatch, capsys, pem_files):
    os.chmod(pem_files["ca.pem"], 0)
    if os.geteuid() == 0:  # root reads every file: the open the check makes fails as it would for others
        real_open = open

        def refused(path, *args, **kwargs):
            if str(path) == pem_files["ca.pem"]:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr("builtins.open", refused)
    line = invalid_line(monkeypatch, capsys, {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": pem_files["ca.pem"]})
    assert line.endswith(f"KAFKA_SSL_CA_LOCATION={pem_files['ca.pem']}: not readable (Permission denied)")


def test_an_unknown_endpoint_identification_names_the_variable(monkeypatch, capsys):
    line = invalid_line(monkeypatch, capsys, {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_ENDPOINT_IDENTIFICATION": "dns"})
    assert "KAFKA_SSL_ENDPOINT_IDENTIFICATION: " in line and "'https' or 'none'" in line


def test_secrets_stay_out_of_dumps_reprs_and_error_lines(monkeypatch, capsys, pem_files):
    sasl_secret, key_secret = "sasl-Pa55-word", "key-Pa55-word"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "broker:9093",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "alice",
        "KAFKA_SASL_PASSWORD": sasl_secret,
        "KAFKA_SSL_CERTIFICATE_LOCATION": pem_files["client.pem"],
        "KAFKA_SSL_KEY_LOCATION": pem_files["client-key.pem"],
        "KAFKA_SSL_KEY_PASSWORD": key_secret,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(ProcessorSettings)
    shown = [repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())]
    for text in shown:
        assert sasl_secret not in text and key_secret not in text
    assert settings.kafka_client_config()["sasl.password"] == sasl_secret  # for librdkafka only
    # a bad configuration's line does not show them either
    monkeypatch.setenv("KAFKA_SSL_KEY_LOCATION", pem_files["client-key.pem"] + ".missing")
    monkeypatch.setenv("PROCESSOR_MAX_IN_FLIGHT", "-1")
    with pytest.raises(SystemExit):
        load_settings(ProcessorSettings)
    err = capsys.readouterr().err
    assert "error: invalid configuration" in err
    assert sasl_secret not in err and key_secret not in err
