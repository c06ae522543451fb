"""keras_attn.report.readme: the results block between two marker comments."""

import pytest
from report_helpers import make_record, make_records

from keras_attn import report
from keras_attn.report.readme import replace_block

README = "# keras_attn\n\nIntro.\n\n<!-- results:begin -->\nold\n<!-- results:end -->\n\nMore.\n"


def _h200(records):
    for r in records:
        r["environment"] = {
            "backend": "jax",
            "device": "GPU: gpu:NVIDIA H200",
            "versions": {"keras": "3.15.1", "jax": "0.11.2"},
        }
        r["settings"].update(momentum=0.0, batch_size=128)
        r["data"] = {
            "source": {"kind": "folder", "location": "/tmp/cifar"},
            "counts": {"train": 45000, "val": 5000, "test": 10000},
            "split": {"split_seed": 0},
            "subset": None,
            "fingerprint": "dedcfa57ea256fad24629673b445dd98",
        }
    return records


def test_block_has_table_data_machines_settings_and_limits():
    block = report.readme_block(_h200(make_records()), source="results/cifar10")
    lines = block.splitlines()
    assert lines[0].startswith("<!-- Made from the records in `results/cifar10`")
    assert (
        "| variant | n | mean | std | 95% CI | trainable params | diff vs `cnn` | diff 95% CI "
        "| p (Holm) | P(improvement) |" in lines
    )
    [cnn3] = [x for x in lines if x.startswith("| `cnn3` |")]
    assert cnn3.startswith("| `cnn3` | 3 | 67.00 | 1.00 | [64.52, 69.48] | 1,677,130 | -3.40 |")
    assert "Runs per variant (n): `cnn` 5, `cnn3` 3, `cnn_eca` 6." in block
    assert (
        "- **Data**: image folder `cifar` (decoded from image files, not "
        "tensorflow-datasets' arrays): 45,000 train / 5,000 val / 10,000 test images" in block
    )
    assert "data fingerprint `dedcfa57ea256fad`" in block and "/tmp" not in block
    assert "- **Machines**: jax backend, GPU: gpu:NVIDIA H200 (keras 3.15.1, jax 0.11.2)" in block
    assert "optimizer sgd, learning rate 0.1, momentum 0.0, batch size 128, 10 epochs" in block
    assert "survive Holm at 0.05 (of 2 compared): `cnn3` (-3.40 points)." in block
    assert "Runs present / planned: `cnn3` 4/5." in block
    assert "Registered variants with no runs yet in these settings: `cnn_cbam`," in block
    assert "`cnn_eca`" not in block.split("no runs yet")[1]
    assert "20" not in lines[0]  # no date, no clock


def test_runs_present_count_against_the_most_planned_in_the_settings():
    # cnn_eca run with --runs 4 beside variants run with --runs 16: 4 of 16, not 4 of 4.
    records = [make_record("cnn", i, 0.7, runs=16) for i in range(8)]
    records += [make_record("cnn_eca", i, 0.75, runs=4) for i in range(4)]
    block = report.readme_block(records)
    assert "Runs present / planned: `cnn` 8/16, `cnn_eca` 4/16." in block


def test_data_are_named_by_their_name_and_fingerprint_not_a_machines_path():
    records = _h200(make_records())
    for r in records:
        r["data"]["source"] = {
            "kind": "folder",
            "name": "cifar10-jpeg.tar.gz",
            "location": "/scratch/job-123/cifar10-jpeg",
            "archive": "/scratch/job-123/cifar10-jpeg.tar.gz",
        }
    block = report.readme_block(records, source="results/cifar10")
    assert "- **Data**: image folder `cifar10-jpeg.tar.gz` (decoded" in block
    assert "/scratch" not in block and "job-123" not in block


def test_rewriting_is_byte_identical(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(README)
    records = _h200(make_records())
    assert report.update_readme(path, records, source="results/cifar10") is True
    first = path.read_bytes()
    assert first.startswith(b"# keras_attn\n\nIntro.\n\n<!-- results:begin -->\n<!-- Made")
    assert first.endswith(b"\n<!-- results:end -->\n\nMore.\n") and b"\nold\n" not in first
    assert report.update_readme(path, list(reversed(records)), source="results/cifar10") is False
    assert path.read_bytes() == first


def test_a_file_without_markers_is_refused(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("# keras_attn\n\nNo markers here.\n")
    with pytest.raises(ValueError, match=r"README.md: .*<!-- results:begin -->.*0 times"):
        report.update_readme(path, make_records())
    assert path.read_text() == "# keras_attn\n\nNo markers here.\n"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        report.update_readme(tmp_path / "missing.md", make_records())


@pytest.mark.parametrize(
    "text, message",
    [
        ("<!-- results:begin -->\n", "exactly once"),
        ("<!-- results:begin -->\n<!-- results:begin -->\n<!-- results:end -->\n", "2 times"),
        ("<!-- results:end -->\n<!-- results:begin -->\n", "comes before"),
    ],
)
def test_marker_errors(text, message):
    with pytest.raises(ValueError, match=message):
        replace_block(text, "x")


def test_several_settings_get_a_table_each():
    recs = make_records() + [make_record("cnn", i, 0.5, sid="bbbb") for i in range(2)]
    block = report.readme_block(recs)
    assert block.count("| variant | n |") == 2 and "settings `bbbb`" in block
