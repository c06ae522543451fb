"""A time budget fills the table balanced and never cuts a run (keras_attn.protocol.plan,
keras_attn.protocol.run). Training is replaced by a stand-in that takes a fixed time on a
fake clock, so these tests check the order and the stopping rule alone."""

import pytest
from data_helpers import write_npz

from keras_attn import protocol
from keras_attn.protocol import budget as budget_mod
from keras_attn.protocol import run as run_mod
from keras_attn.protocol.plan import balanced_order, plan_groups

ABLATION = "cnn_conv_ae_const"  # registered, not one of the study's variants


def test_every_model_to_half_its_runs_first_the_study_before_the_ablations():
    done = {("cnn", r) for r in range(8)} | {("cnn_eca", r) for r in range(4)}
    tasks = protocol.plan_tasks(["cnn", "cnn_eca", ABLATION], 16)
    pending = [t for t in tasks if t not in done]
    groups = plan_groups(pending, 16, "/nowhere", "sid", key=balanced_order(16))
    assert groups == [
        ("cnn_eca", [4, 5, 6, 7]),
        (ABLATION, list(range(8))),
        ("cnn", list(range(8, 16))),
        ("cnn_eca", list(range(8, 16))),
        (ABLATION, list(range(8, 16))),
    ]
    # Without a budget groups come by their first run, packed as many as allowed: all
    # 16 runs of the ablation would come first.
    assert plan_groups(pending, 16, "/nowhere", "sid")[0] == (ABLATION, list(range(16)))


def test_an_ablation_listed_first_still_comes_after_the_study():
    tasks = protocol.plan_tasks([ABLATION, "cnn"], 4)
    groups = plan_groups(tasks, 4, "/nowhere", "sid", key=balanced_order(4))
    assert groups == [("cnn", [0, 1]), (ABLATION, [0, 1]), ("cnn", [2, 3]), (ABLATION, [2, 3])]


@pytest.fixture
def fake_training(monkeypatch):
    """Every group takes 40 fake seconds, and is estimated to; returns its records."""
    now = [0.0]
    monkeypatch.setattr(budget_mod, "_clock", lambda: now[0])
    monkeypatch.setattr(budget_mod.TimeBudget, "estimate", lambda self, m, size, epochs: 40.0)
    monkeypatch.setattr(run_mod.time, "perf_counter", lambda: now[0])
    started = []

    def train_group(job, runs, **kwargs):
        started.append((job.spec.name, list(runs)))
        now[0] += 40.0
        return [{"model": job.spec.name, "run": r} for r in runs]

    monkeypatch.setattr(run_mod, "train_group", train_group)
    real = run_mod.resolve_training  # groups of two runs, whichever trainer this backend has
    monkeypatch.setattr(run_mod, "resolve_training", lambda s: {**real(s), "group_size": 2})
    return started


def test_the_budget_never_cuts_a_group_and_stops_balanced(fake_training, tmp_path):
    npz = write_npz(tmp_path / "syn.npz", n_train=40, n_test=8, size=8)
    settings = protocol.ProtocolSettings(
        runs=4,
        epochs=1,
        batch_size=8,
        data=npz,
        val_size=8,
        model_overrides={"blocks": [4], "dense_units": 8},
    )
    lines = []
    records = protocol.run_protocol(
        ["cnn", ABLATION, "cnn_eca"], settings, str(tmp_path / "out"), log=lines.append,
        time_budget=130,
    )  # fmt: skip
    # 130 s: three groups of 40 s fit, the fourth would end past the budget: not started.
    assert fake_training == [("cnn", [0, 1]), ("cnn_eca", [0, 1]), (ABLATION, [0, 1])]
    assert [(r["model"], r["run"]) for r in records] == [
        ("cnn", 0),
        (ABLATION, 0),
        ("cnn_eca", 0),
        ("cnn", 1),
        (ABLATION, 1),
        ("cnn_eca", 1),
    ]
    assert any(line.startswith("time budget: stopping before cnn runs [2, 3]") for line in lines)
