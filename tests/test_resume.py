"""Interrupted trainings resume to the uninterrupted result; same seed and config give the same outputs."""

import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

from tests.conftest import TINY_PHANTOMS
from wsseg.checkpoint import read_checkpoint
from wsseg.cli import app
from wsseg.data.cache import read_cache
from wsseg.training import Monitor, minibatches, train_loop

runner = CliRunner()


class Stop(Exception):
    """Stands in for a kill in the middle of an epoch."""


def tiny_training(monitor, stop_in_epoch=None, config=""):
    """Train a small regression with shuffling and dropout (so every RNG matters); return its weights."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 1))
    data = torch.from_numpy(np.random.default_rng(1).normal(size=(40, 5)).astype(np.float32))
    epoch = iter(range(100))

    def batches(rng):
        if next(epoch) == stop_in_epoch:
            yield data[:8]
            raise Stop
        for index in minibatches(len(data), 8, rng):
            yield data[index]

    def loss(model, batch):
        return ((model(batch[:, :4])[:, 0] - batch[:, 4]) ** 2).mean()

    def validate(model):
        return {"score": -float(loss(model, data))}

    monitor.config = config
    history = train_loop(
        model, batches, loss, epochs=5, lr=0.01, seed=3, monitor=monitor, validate=validate, cosine=True, select="score"
    )
    return model.state_dict(), history


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_training_stopped_mid_epoch_resumes_to_the_uninterrupted_weights(tmp_path):
    reference, reference_history = tiny_training(Monitor("tiny"))
    resume = tmp_path / "tiny.resume.pt"
    with pytest.raises(Stop):
        tiny_training(Monitor("tiny", resume=resume), stop_in_epoch=3)
    assert torch.load(resume, weights_only=False)["epochs_done"] == 3
    weights, history = tiny_training(Monitor("tiny", resume=resume))
    assert_same_weights(weights, reference)
    assert history == reference_history


def test_select_ends_with_the_weights_of_the_best_epoch():
    torch.manual_seed(0)
    model = nn.Linear(1, 1)
    data = torch.ones(4, 2)
    scores = iter([0.1, 0.9, 0.3])
    seen = []

    def validate(model):
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"score": next(scores)}

    history = train_loop(
        model,
        lambda rng: [data],
        lambda m, b: ((m(b[:, :1]) - 5) ** 2).mean(),
        epochs=3,
        lr=0.1,
        validate=validate,
        select="score",
    )
    assert [h["score"] for h in history] == [0.1, 0.9, 0.3]
    assert_same_weights(model.state_dict(), seen[1])
    assert not torch.equal(model.weight, seen[2]["weight"])


def test_a_resume_file_of_another_configuration_is_not_used(tmp_path):
    reference, _ = tiny_training(Monitor("tiny"), config="b")
    resume = tmp_path / "tiny.resume.pt"
    with pytest.raises(Stop):
        tiny_training(Monitor("tiny", resume=resume), stop_in_epoch=2, config="a")
    with pytest.warns(UserWarning, match="another configuration"):
        weights, history = tiny_training(Monitor("tiny", resume=resume), config="b")
    assert_same_weights(weights, reference)
    assert len(history) == 5


KILL_PARAMS = {
    "seed": 0,
    "device": "cpu",
    "data": {
        "synthetic": TINY_PHANTOMS.model_dump(),
        "image_size": 32,
        "roi_size": 16,
    },
    "myocardium": {"config": {"epochs": 8, "base_channels": 4, "depth": 2, "batch_size": 3}},
    "segmentation": {"supervisions": ["slice", "stack"]},
}


def wsseg(*args, workdir):
    return runner.invoke(app, [*args, "-p", str(workdir.parent / "params.yaml"), "-w", str(workdir)])


@pytest.fixture
def ingested(tmp_path):
    """Two workdirs holding the same tiny dataset cache."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(KILL_PARAMS))
    first, second = tmp_path / "a", tmp_path / "b"
    for command in ("synth", "ingest"):
        assert wsseg(command, workdir=first).exit_code == 0
    (second / "cache").mkdir(parents=True)
    (second / "cache" / "dataset.h5").write_bytes((first / "cache" / "dataset.h5").read_bytes())
    return first, second


def test_sigkill_during_training_then_rerun_gives_the_uninterrupted_model(ingested):
    uninterrupted, killed = ingested
    assert wsseg("train-myo", workdir=uninterrupted).exit_code == 0
    resume = killed / "models" / "myocardium.resume.pt"
    command = [
        sys.executable,
        "-c",
        "from wsseg.cli import app; app()",
        "train-myo",
        "-p",
        str(killed.parent / "params.yaml"),
        "-w",
        str(killed),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not resume.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, f"training ended before it could be killed: {process.stderr.read()}"
    assert torch.load(resume, weights_only=False)["epochs_done"] < 8
    assert not (killed / "models" / "myocardium.pt").exists()
    assert wsseg("train-heart", workdir=killed).exit_code == 0  # step 1 of the myocardium is in place
    result = wsseg("predict-myo", workdir=killed)  # the killed stage left nothing a later stage trusts
    assert result.exit_code == 2 and "Run `wsseg train-myo` first" in result.stderr

    assert wsseg("train-myo", workdir=killed).exit_code == 0
    expected, resumed = (read_checkpoint(w / "models" / "myocardium.pt") for w in (uninterrupted, killed))
    assert_same_weights(resumed["state"]["weights"], expected["state"]["weights"])
    assert resumed["history"] == expected["history"]
    assert not resume.exists()


def test_same_seed_and_config_give_identical_caches_and_predictions(pipeline_run, tmp_path):
    """Rerunning the stages from the same inputs reproduces every cache bit for bit (CPU)."""
    params, workdir, _ = pipeline_run
    copy = shutil.copytree(workdir, tmp_path / "data")
    steps = [["ingest"], ["predict-myo"], ["predict-cam", "--level", "slice"], ["pseudo-label", "--level", "slice"]]
    steps += [["train-seg", "--supervision", "slice"], ["predict", "--supervision", "slice"]]
    for step in steps:
        result = runner.invoke(app, [*step, "-p", str(params), "-w", str(copy)])
        assert result.exit_code == 0, result.output
    for name in ("dataset", "myocardium", "cams-slice", "pseudo-slice", "predictions-slice"):
        before, after = read_cache(workdir / "cache" / f"{name}.h5"), read_cache(copy / "cache" / f"{name}.h5")
        assert before.keys() == after.keys()
        for key in before.keys() - {"source"}:  # the input file paths, which name the workdir
            if isinstance(before[key], list):
                assert all(np.array_equal(a, b) for a, b in zip(before[key], after[key])), (name, key)
            else:
                assert np.array_equal(before[key], after[key]), (name, key)
