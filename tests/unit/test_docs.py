"""The README's configuration table and .env.example list exactly the variables the code reads."""

import re

from tests.support.doc_steps import REPO, variables_in_code


def test_readme_configuration_table_matches_the_settings():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", section, flags=re.M))
    assert documented == variables_in_code()


def test_env_example_lists_every_variable():
    example = (REPO / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z_]+)=", example, flags=re.M))
    assert listed == variables_in_code()


def test_make_help_lists_every_target_with_a_description():
    import subprocess

    listed = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    described = set()
    for makefile in [REPO / "Makefile", *sorted((REPO / "mk").glob("*.mk"))]:
        described |= set(re.findall(r"^([a-z0-9-]+):.*## ", makefile.read_text(), flags=re.M))
    shown = set(re.findall(r"^  make (\S+)", listed, flags=re.M))
    assert {"cluster-e2e", "k8s-tools"} <= described
    assert shown == described


def test_every_command_says_in_its_help_where_its_configuration_comes_from():
    from typer.testing import CliRunner

    from tombstone_processor.admin.cli import app as admin
    from tombstone_processor.cli import app as processor
    from tombstone_producer.cli import app as producer
    from tombstone_topic_init.cli import app as topic_init

    for app in (processor, producer, topic_init, admin):
        text = " ".join(CliRunner().invoke(app, ["--help"], terminal_width=200).output.split())
        assert "Configured by environment variables" in text and ".env.example" in text


def test_every_shell_block_of_the_docs_runs_in_a_test_or_says_why_not():
    from tests.support.doc_steps import DOCS, steps, unaccounted

    for doc in DOCS:
        assert unaccounted(doc) == [], "mark them <!--pytest.mark.doc_step(...)--> or <!--pytest.mark.skip(reason=...)-->"
        assert steps(doc), doc


def test_the_kubernetes_docs_say_when_the_chart_leaves_resonate_url_unset():
    # The chart leaves it unset with resonate.localMode=true (tests/chart/test_wiring.py); the
    # docs' table of what each value sets said "always set".
    table = (REPO / "docs" / "kubernetes.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| `resonate.*` | `RESONATE_URL` |"))
    assert "resonate.localMode=true" in row and "always set" not in row


def test_the_processor_layout_names_every_module_and_no_other():
    """docs/processor.md draws the processor's modules; it stays true to the package."""
    import re

    package = REPO / "services" / "processor" / "src" / "tombstone_processor"
    modules = {
        path.relative_to(package).as_posix() for path in package.rglob("*.py")
        if path.name not in {"__init__.py", "__main__.py"}
    }
    drawing = (REPO / "docs" / "processor.md").read_text()
    named = set(re.findall(r"\b[a-z_]+\.py\b", drawing))
    shown = {m for m in modules if m.rsplit("/", 1)[-1] in named}
    assert shown == modules, f"not in docs/processor.md: {sorted(modules - shown)}"
    assert named <= {m.rsplit("/", 1)[-1] for m in modules}, f"gone: {sorted(named - {m.rsplit('/', 1)[-1] for m in modules})}"
