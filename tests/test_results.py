"""The published results: what is committed under results/cifar10 is what the protocol
wrote, and the report and the README's results block are remade from it byte for byte."""

import json
import shutil
from pathlib import Path

import pytest

from keras_attn import _files as files
from keras_attn import report
from keras_attn.protocol import ProtocolSettings

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results" / "cifar10"
RECORDS = sorted(RESULTS.glob("records/*/*/run-*.json"))
TEXT_FILES = ["report.md", "report.csv", "runs.csv", "results.jsonl"]

pytestmark = pytest.mark.skipif(not RECORDS, reason="no published records in results/cifar10")


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_record_is_as_the_protocol_writes_it(path):
    text = path.read_bytes()
    record = json.loads(text)
    assert files.json_line(record) == text  # one sorted JSON line, as written
    sid = path.parent.parent.name
    assert record["settings_id"] == sid and record["model"] == path.parent.name
    assert path.name == f"run-{record['run']:04d}.json" and record["format"] == 1
    # The settings id is the hash of the record's own comparable settings.
    settings = ProtocolSettings.from_dict(record["settings"])
    assert settings.settings_id(record["comparable_settings"]["data_fingerprint"]) == sid
    assert record["status"] in ("finished", "diverged")


def test_the_report_is_remade_byte_for_byte(tmp_path):
    shutil.copytree(RESULTS / "records", tmp_path / "records")
    report.write_report(str(tmp_path), report.load_records(str(tmp_path)), plot=False)
    for name in TEXT_FILES:
        assert (tmp_path / name).read_bytes() == (RESULTS / name).read_bytes(), name


def test_the_readme_results_block_is_made_from_the_records(tmp_path):
    readme = tmp_path / "README.md"
    shutil.copyfile(REPO / "README.md", readme)
    report.update_readme(str(readme), report.load_records(str(RESULTS)), source="results/cifar10")
    assert readme.read_bytes() == (REPO / "README.md").read_bytes()


def test_results_hold_records_reports_and_machine_descriptions_not_raw_logs():
    logs = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "results").rglob("*.log"))
    assert not logs, f"raw logs under results/: {logs}"


def test_the_docs_links_into_results_exist():
    import re

    broken = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]*results/[^)#\s]*)", page.read_text()):
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken, broken
