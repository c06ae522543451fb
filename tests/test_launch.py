"""Tests of keras_attn.protocol's launchers (submitit, local executor) and --shard auto."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from data_helpers import SRC, TIMING_KEYS, write_npz

from keras_attn import protocol, report

submitit = pytest.importorskip("submitit")

SKIP = TIMING_KEYS | {"resumed_at_epochs", "environment", "settings", "training"}


# A slim backbone: what is tested is the launcher, not the model.
SLIM = {"blocks": [4, 8], "dense_units": 8}


def _settings(npz, **kw):
    base = dict(runs=2, epochs=2, batch_size=16, data=str(npz), val_size=16, threads=1)
    base["model_overrides"] = SLIM
    base.update(kw)
    return protocol.ProtocolSettings(**base)


def _same(a, b):
    """Records agree on everything but timings, the resume history and the machine."""
    differ = sorted(k for k in set(a) | set(b) if k not in SKIP and a.get(k) != b.get(k))
    assert not differ, {k: (str(a.get(k))[:120], str(b.get(k))[:120]) for k in differ}
    return True


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    return write_npz(tmp_path_factory.mktemp("data") / "syn.npz", n_train=224, n_test=32)


def _in_a_fresh_process(out, **settings):
    """run_protocol in a new Python process, as the launcher's jobs run: the thread pools
    are the settings' own (in this process, an earlier test may have fixed them)."""
    code = (
        "from keras_attn import protocol\n"
        f"settings = protocol.ProtocolSettings(**{settings!r})\n"
        f"protocol.run_protocol('cnn', settings, {str(out)!r}, log=None)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return report.load_records(out)


def _launched(npz, **kw):
    """The launcher tests' settings: three epochs, so that a preempted job has epochs left."""
    return _settings(npz, epochs=3, batch_size=32, val_size=32, **kw)


@pytest.fixture(scope="module")
def one_process(npz, tmp_path_factory):
    """Both runs of `_launched` in one fresh process: what the launchers' jobs must give."""
    return _in_a_fresh_process(tmp_path_factory.mktemp("one"), **_launched(npz).to_dict())


# --------------------------------------------------------------------------- shard auto

SLURM = {
    "SLURM_ARRAY_TASK_ID": "5",
    "SLURM_ARRAY_TASK_COUNT": "4",
    "SLURM_ARRAY_TASK_MIN": "3",
    "SLURM_ARRAY_TASK_MAX": "6",
}


@pytest.mark.parametrize(
    "env, shard, says",
    [
        (SLURM, (3, 4), "SLURM_ARRAY_TASK_ID=5 of SLURM_ARRAY_TASK_COUNT=4"),
        ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MAX": "1"}, (1, 2), "TASK_ID=0"),
        ({"JOB_COMPLETION_INDEX": "2", "JOB_COMPLETIONS": "3"}, (3, 3), "JOB_COMPLETION_INDEX=2"),
    ],
)
def test_shard_auto_maps_slurm_and_kubernetes_variables(env, shard, says):
    got, where = protocol.shard_from_environment(env)
    assert got == shard and says in where
    # The shards of a whole array partition the tasks.
    assert protocol.plan_tasks("cnn", 4, got) == protocol.plan_tasks("cnn", 4, f"{got[0]}/{got[1]}")


@pytest.mark.parametrize(
    "env, match",
    [
        ({}, "found no job-array variables"),
        ({**SLURM, "JOB_COMPLETION_INDEX": "0", "JOB_COMPLETIONS": "4"}, "both a SLURM"),
        ({**SLURM, "SLURM_ARRAY_TASK_ID": "9"}, "out of range"),
        ({**SLURM, "SLURM_ARRAY_TASK_MAX": "9"}, "contiguous array"),
        ({"SLURM_ARRAY_TASK_ID": "1"}, "neither SLURM_ARRAY_TASK_COUNT nor"),
        ({"JOB_COMPLETION_INDEX": "1"}, "JOB_COMPLETIONS is not"),
        ({"JOB_COMPLETION_INDEX": "3", "JOB_COMPLETIONS": "3"}, "out of range"),
        ({"JOB_COMPLETION_INDEX": "x", "JOB_COMPLETIONS": "3"}, "not an integer"),
    ],
)
def test_shard_auto_refuses_inconsistent_variables(env, match):
    with pytest.raises(ValueError, match=match):
        protocol.shard_from_environment(env)


def test_cli_shard_auto_says_which_variable_it_read(npz, tmp_path, monkeypatch, capsys):
    from test_protocol import _script_main

    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    monkeypatch.setenv("JOB_COMPLETIONS", "2")
    code = _script_main()(
        [
            "--models",
            "cnn",
            "--runs",
            "2",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--data-dir",
            str(npz),
            "--val-size",
            "16",
            "--threads",
            "1",
            "--shard",
            "auto",
            "--no-report",
            "--out",
            str(tmp_path),
        ]  # fmt: skip
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "shard 2/2 from JOB_COMPLETION_INDEX=1 of JOB_COMPLETIONS=2" in out
    assert [r["run"] for r in report.load_records(tmp_path)] == [1]


# --------------------------------------------------------------------------- launchers


def test_unknown_launcher_is_refused(npz, tmp_path):
    with pytest.raises(ValueError, match="Unknown launcher 'pbs'.*slurm, local"):
        protocol.launch("cnn", _settings(npz), str(tmp_path), launcher="pbs")


@pytest.mark.slow
def test_local_launcher_two_jobs_equal_one_process(npz, one_process, tmp_path):
    lines = []
    done = protocol.launch("cnn", _launched(npz), str(tmp_path), launcher="local", log=lines.append)
    assert sorted(done) == [("cnn", 0), ("cnn", 1)]
    assert any("2 job(s) submitted (local)" in line for line in lines)
    jobs = report.load_records(tmp_path)
    assert [(r["model"], r["run"]) for r in jobs] == [("cnn", 0), ("cnn", 1)]
    assert all(_same(a, b) for a, b in zip(jobs, one_process, strict=True))
    # Launching again submits nothing: every run has its record.
    again = []
    assert protocol.launch("cnn", _launched(npz), str(tmp_path), launcher="local",
                           log=again.append) == []  # fmt: skip
    assert again == [f"launch: nothing pending in {tmp_path}"]


def _task_pid(job):
    """The training process of a local job: the child of submitit's controller."""
    pid = job._process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, f"controller {pid} has children {children}"
    return int(children[0])


def _wait_for(job, text, seconds):
    """Poll the job's log until ``text`` is in it (the job must be running)."""
    deadline = time.monotonic() + seconds
    while text not in (job.stdout() or ""):
        assert not job.done(), f"the job ended before logging {text!r}:\n{job.stdout()}"
        assert time.monotonic() < deadline, f"the job did not log {text!r} within {seconds} s"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_preempted_local_job_stops_after_its_checkpoint_and_resumes(npz, one_process, tmp_path):
    """submitit's preemption signal: the job checkpoints, is requeued, stops after its epoch
    checkpoint (whatever Keras was running when the signal came), and the requeued call
    resumes the group from there. The signal is sent as soon as the job says it will obey
    it, before its first epoch: any epoch end may then stop it."""
    settings, ref = _launched(npz, runs=1), one_process[0]
    out = tmp_path / "out"
    [job] = protocol.launch("cnn", settings, str(out), launcher="local", wait=False, log=None)
    _wait_for(job, "SIGUSR2 stops this job after its next checkpoint", 600)
    # What SLURM sends a job's processes before preempting or timing it out (submitit's
    # local controller forwards it only at its own time-out, so send it to the task).
    os.kill(_task_pid(job), signal.SIGUSR2)
    deadline = time.monotonic() + 900  # a guard against a hang, not a timing
    while not job.done():
        assert time.monotonic() < deadline, f"the job did not finish within 900 s:\n{job.stdout()}"
        time.sleep(0.5)
    assert job.result() == [("cnn", 0)]
    logs = job.stdout()
    _, first, second = logs.split("Starting with")  # submitit started the call twice
    ends = r"\[cnn run 0\] epoch (\d)/3:"
    # Requeued at once, the first process finished the epoch it was in, checkpointed it
    # and stopped: at most one epoch after the requeue, and no completion.
    assert "Requeued job" in first and "completed" not in first, first
    assert len(re.findall(ends, first.split("Requeued job")[1])) <= 1, first
    done = int(re.findall(ends, first)[-1])
    assert f"resuming after epoch {done}" in second, second
    [rec] = report.load_records(out)
    assert rec["resumed_at_epochs"] == [done]
    # Every epoch was trained once, in one process or the other.
    assert re.findall(ends, logs) == ["1", "2", "3"], logs
    assert _same(rec, ref)
