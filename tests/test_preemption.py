"""A preempted job stops after its checkpoint (keras_attn.protocol.preemption), in process.

submitit's handler ends a job with `SystemExit` from wherever the main thread is when the
signal comes; a bare ``except:`` there swallows it. These tests raise the signal in this
process, with a stand-in for submitit's handler. tests/test_launch.py preempts a real
local submitit job.
"""

import os
import signal

import pytest
from data_helpers import write_npz

from keras_attn import _files as files
from keras_attn import protocol
from keras_attn.protocol import records
from keras_attn.protocol.preemption import deferred_exit, exit_if_preempted, preempted

SIG = getattr(signal, "SIGUSR2", None)
pytestmark = pytest.mark.skipif(SIG is None, reason="no SIGUSR2 on this platform")


@pytest.fixture
def requeue_handler():
    """A stand-in for submitit's handler: it requeues (counted) and exits with code 144."""
    calls = []

    def handler(signum, frame):
        calls.append(signum)
        raise SystemExit(144)  # what submitit's local job environment raises

    previous = signal.signal(SIG, handler)
    yield calls
    signal.signal(SIG, previous)


def _signal_inside_a_bare_except():
    try:
        os.kill(os.getpid(), SIG)  # the handler runs here, inside the try
    except:  # noqa: E722  (as Keras and TensorFlow have them)
        return "swallowed"
    return "went on"


def test_a_bare_except_swallows_the_exit_of_an_undeferred_handler(requeue_handler):
    """The fault: the job is requeued, and then it trains on."""
    assert _signal_inside_a_bare_except() == "swallowed"
    assert requeue_handler == [SIG]


def test_a_deferred_exit_survives_a_bare_except_until_the_checkpoint(requeue_handler):
    with deferred_exit([SIG]):
        assert _signal_inside_a_bare_except() == "went on"
        assert requeue_handler == [SIG]  # requeued at once
        assert preempted()
        os.kill(os.getpid(), SIG)  # a second signal: one requeue is enough
        assert requeue_handler == [SIG]
        with pytest.raises(SystemExit) as stop:
            exit_if_preempted()
        assert stop.value.code == 144
        assert not preempted()
    assert signal.getsignal(SIG) is not None and not preempted()
    # The handler is submitit's again after the block.
    assert _signal_inside_a_bare_except() == "swallowed"


def test_nothing_pending_after_a_block_that_finished_its_work(requeue_handler):
    """Preempted after its last checkpoint, a job that finished returns normally."""
    with deferred_exit([SIG]):
        os.kill(os.getpid(), SIG)
        assert preempted()
    assert not preempted()
    exit_if_preempted()


def test_default_and_ignored_handlers_are_left_alone():
    previous = signal.signal(SIG, signal.SIG_IGN)
    try:
        with deferred_exit([SIG]):
            assert signal.getsignal(SIG) is signal.SIG_IGN
    finally:
        signal.signal(SIG, previous)


def test_preempted_run_stops_after_its_epoch_checkpoint_and_resumes(requeue_handler, tmp_path):
    npz = write_npz(tmp_path / "syn.npz", n_train=32, n_test=8, size=16)
    slim = {"blocks": [4, 8], "dense_units": 8}
    settings = protocol.ProtocolSettings(
        runs=1, epochs=3, batch_size=16, data=npz, val_size=8, threads=1, model_overrides=slim
    )
    data = protocol.load_protocol_data(settings)
    out = tmp_path / "out"
    epochs = []

    def preempt_in_first_epoch(model, run, epoch, seconds):
        epochs.append(epoch)
        if epoch == 0:
            os.kill(os.getpid(), SIG)  # the job is told during its first epoch's bookkeeping

    with deferred_exit([SIG]), pytest.raises(SystemExit) as stop:
        protocol.run_one("cnn", 0, settings, data, str(out), on_epoch=preempt_in_first_epoch)
    assert stop.value.code == 144 and requeue_handler == [SIG] and epochs == [0]
    sid = settings.settings_id(data.fingerprint())
    ckpt = records.checkpoint_path(str(out), sid, "cnn", [0])
    group, _ = records.load_checkpoint(ckpt)
    assert group["epochs_done"] == 1  # the checkpoint of the epoch it was told in
    assert not files.exists(records.record_path(str(out), sid, "cnn", 0))
    rec = protocol.run_one("cnn", 0, settings, data, str(out), save_weights=False)
    assert rec["resumed_at_epochs"] == [1] and rec["epochs_trained"] == 3
