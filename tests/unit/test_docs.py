"""The README's configuration table and .env.example list exactly the variables the code reads."""

import re
from pathlib import Path

from devstack.postgres import STORAGE_VARIABLE
from tombstone_common.settings import PipelineSettings
from tombstone_processor.settings import ProcessorSettings
from tombstone_topic_init.topics import TopicInitSettings

REPO = Path(__file__).resolve().parents[2]
OTEL = {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_TRACES_EXPORTER"}
LOCAL_STACK = {STORAGE_VARIABLE}  # read by `make up` / `make demo`, not by the services


def variables_in_code() -> set[str]:
    names = set()
    for settings in (PipelineSettings, TopicInitSettings, ProcessorSettings):
        names |= {field.upper() for field in settings.model_fields}
    return names | OTEL | LOCAL_STACK


def test_readme_configuration_table_matches_the_settings():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", section, flags=re.M))
    assert documented == variables_in_code()


def test_env_example_lists_every_variable():
    example = (REPO / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z_]+)=", example, flags=re.M))
    assert listed == variables_in_code()
