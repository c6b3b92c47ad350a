"""Several processes on torchrun (gloo, CPU): training matches one process, sharded stages match unsharded ones."""

import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from tests.conftest import merge, write_params
from wsseg.distributed import gather_rows, local_share, shard_cases
from wsseg.stages.cases import map_cases

pytestmark = pytest.mark.slow
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}  # torchrun's default per process; float sums depend on threads


def torchrun(nproc: int, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
    result = subprocess.run(command, cwd=cwd, env=ONE_THREAD, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def wsseg(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "wsseg", *args], env=ONE_THREAD, capture_output=True, text=True, timeout=600
    )
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_without_torchrun_one_process_takes_every_row_and_case():
    batch = np.arange(6)
    assert local_share(batch) is batch and local_share(None) is None
    assert shard_cases(np.array(["b", "a", "b"])).tolist() == [0, 1, 2]
    merged = gather_rows({"x": np.array([20, 0, 10]), "masks": ["c", "a", "b"]}, np.array([2, 0, 1]), 3)
    assert merged["x"].tolist() == [0, 10, 20] and merged["masks"] == ["a", "b", "c"]


def test_map_cases_computes_each_case_alone_and_merges_in_row_order():
    case_ids = np.array(["b", "a", "b", "c", "a"])
    calls = []

    def compute(rows):
        calls.append(rows.tolist())
        return {"row": rows * 10, "case": [case_ids[r] for r in rows]}

    merged = map_cases(case_ids, compute, "test")
    assert sorted(calls) == [[0, 2], [1, 4], [3]]
    assert merged["row"].tolist() == [0, 10, 20, 30, 40] and merged["case"] == case_ids.tolist()


def test_two_gloo_processes_train_like_one_with_the_same_global_batch(tmp_path):
    """Exact up to float rounding: a BatchNorm-free net with a per-sample loss, global batch 8, seed 0."""
    worker = Path(__file__).parent / "workers" / "train_tiny.py"
    torchrun(1, str(worker), str(tmp_path / "one"))
    torchrun(2, str(worker), str(tmp_path / "two"))
    one = torch.load(tmp_path / "one.rank0.pt")
    ranks = [torch.load(tmp_path / f"two.rank{r}.pt") for r in (0, 1)]
    assert [r["samples"] for r in ranks] == [one["samples"] // 2] * 2  # each process trained on half of every batch
    for name, weight in one["weights"].items():
        torch.testing.assert_close(ranks[0]["weights"][name], weight, rtol=0, atol=1e-6)  # the stated tolerance
        assert torch.equal(ranks[1]["weights"][name], ranks[0]["weights"][name])  # DDP keeps the processes in step
    assert [h["loss"] for h in ranks[0]["history"]] == pytest.approx([h["loss"] for h in one["history"]], abs=1e-6)


def copy_run(pipeline_run, folder: Path, overrides: dict, models: bool = False) -> tuple[Path, dict]:
    """The tiny run's caches (and models) in ``folder``, its params plus ``overrides`` in ``folder/params.yaml``."""
    params_path, workdir, _ = pipeline_run
    params = merge(yaml.safe_load(params_path.read_text()), overrides)
    folder.mkdir(parents=True)
    for part in ("cache", "models") if models else ("cache",):
        shutil.copytree(workdir / part, folder / part)
    return write_params(folder, params), params


def _distance(a: dict, b: dict) -> float:
    keys = [k for k in a if a[k].is_floating_point() and "running" not in k]
    return math.sqrt(sum(float(((a[k] - b[k]) ** 2).sum()) for k in keys))


def test_the_params_switch_trains_the_myocardium_unet_on_two_processes(pipeline_run, tmp_path):
    """`distributed.nproc_per_node: 2` makes a plain `wsseg train-myo` run itself on torchrun.

    The U-Net has BatchNorm, whose statistics are per process on the CPU (SyncBatchNorm needs
    CUDA), and a Dice loss over the batch, so two processes only approximate one: the stated
    tolerance is a distance between the two runs' weights below half of how far training (6 epochs)
    moved them.
    """
    runs = {}
    for nproc in (1, 2):
        ws = tmp_path / f"n{nproc}"
        config, params = copy_run(
            pipeline_run, ws, {"distributed": {"nproc_per_node": nproc}, "myocardium": {"config": {"epochs": 6}}}
        )
        result = wsseg("train-myo", "-p", str(config), "-w", str(ws))
        assert ("running on torchrun: 2 process(es)" in result.stdout) == (nproc == 2)
        assert result.stdout.count("myocardium model written") == 1  # rank 0 alone prints
        losses = (ws / "curves" / "myocardium" / "plots" / "metrics" / "loss.tsv").read_text().splitlines()
        assert len(losses) == 1 + params["myocardium"]["config"]["epochs"]  # one curve, written by rank 0 alone
        runs[nproc] = torch.load(ws / "models" / "myocardium.pt", weights_only=False)["state"]["weights"]
    from wsseg_unet.model import UNet

    torch.manual_seed(params["seed"])
    config = params["myocardium"]["config"]
    start = UNet(1, config["base_channels"], config["depth"]).state_dict()
    assert _distance(runs[1], runs[2]) < 0.5 * _distance(runs[1], start)


def test_run_all_honours_the_params_switch_through_every_stage(pipeline_run, tmp_path):
    params_path, _, _ = pipeline_run
    params = merge(yaml.safe_load(params_path.read_text()), {"distributed": {"nproc_per_node": 2}})
    config, ws = write_params(tmp_path, params), tmp_path / "data"  # a run from scratch: no caches copied
    result = wsseg("run-all", "-p", str(config), "-w", str(ws))
    assert "running on torchrun: 2 process(es) per node x 1 node(s)" in result.stdout
    assert (
        result.stdout.count("run-all summary") == 1
        and (ws / "metrics.json").exists()
        and (ws / "timings.json").exists()
    )
    epochs = {
        "myocardium": params["myocardium"],
        "cam-slice": params["cam"],
        "cam-stack": params["cam"],
        "fibrosis-stack": params["segmentation"],
    }
    for curve, section in epochs.items():  # every training ran, and one process wrote its curve
        losses = (ws / "curves" / curve / "plots" / "metrics" / "loss.tsv").read_text().splitlines()
        assert len(losses) == 1 + section["config"]["epochs"], curve


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_nodes_meeting_at_an_endpoint_train_like_two_processes_on_one(pipeline_run, tmp_path):
    """`nnodes: 2` with `rdzv_endpoint`: the multi-node path, both "machines" on localhost."""
    layouts = {
        "one-node": {"nproc_per_node": 2},
        "two-nodes": {"nnodes": 2, "rdzv_endpoint": f"localhost:{_free_port()}"},
    }
    weights = {}
    for name, layout in layouts.items():
        ws = tmp_path / name
        config, _ = copy_run(pipeline_run, ws, {"distributed": layout})
        command = [sys.executable, "-m", "wsseg", "train-myo", "-p", str(config), "-w", str(ws)]
        nodes = [
            subprocess.Popen(command, env=ONE_THREAD, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(layout.get("nnodes", 1))
        ]
        outputs = [node.communicate(timeout=300)[0] for node in nodes]
        assert all(node.returncode == 0 for node in nodes), outputs
        weights[name] = torch.load(ws / "models" / "myocardium.pt", weights_only=False)["state"]["weights"]
    for key, value in weights["one-node"].items():
        torch.testing.assert_close(weights["two-nodes"][key], value, rtol=0, atol=1e-5)


def _same_caches(a: Path, b: Path) -> None:
    for path in sorted(a.glob("*.h5")):
        with h5py.File(path) as x, h5py.File(b / path.name) as y:
            assert dict(x.attrs) == dict(y.attrs), path.name

            def same(name, item, y=y, file=path.name):
                if isinstance(item, h5py.Dataset):
                    assert np.array_equal(item[()], y[name][()]), f"{file}:{name}"

            x.visititems(same)


def test_sharded_stages_write_exactly_the_single_process_caches_and_files(pipeline_run, tmp_path):
    workdir = pipeline_run[1]
    steps = [
        ["predict-myo"],
        ["predict-cam", "--level", "slice"],
        ["predict-cam", "--level", "stack"],
        ["pseudo-label", "--level", "slice"],
        ["predict", "--supervision", "slice"],
        ["predict", str(workdir / "synthetic"), "--split", "test", "--out", "{ws}/folder"],
    ]
    for nproc in (1, 2):
        ws = tmp_path / f"n{nproc}"
        config, _ = copy_run(pipeline_run, ws, {"distributed": {"nproc_per_node": nproc}}, models=True)
        for step in steps:
            wsseg(*[arg.format(ws=ws) for arg in step], "-p", str(config), "-w", str(ws))
    _same_caches(tmp_path / "n1" / "cache", tmp_path / "n2" / "cache")
    files = sorted(p.name for p in (tmp_path / "n1" / "folder").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "n2" / "folder").iterdir()) and "predictions.csv" in files
    assert (tmp_path / "n1" / "folder" / "predictions.csv").read_text() == (
        tmp_path / "n2" / "folder" / "predictions.csv"
    ).read_text()
    for name in files:
        if name.endswith(".png"):
            assert np.array_equal(
                np.asarray(Image.open(tmp_path / "n1" / "folder" / name)),
                np.asarray(Image.open(tmp_path / "n2" / "folder" / name)),
            )


def test_a_batch_smaller_than_the_processes_is_refused_in_one_line(pipeline_run, tmp_path):
    config, _ = copy_run(
        pipeline_run,
        tmp_path / "ws",
        {"distributed": {"nproc_per_node": 2}, "myocardium": {"config": {"batch_size": 1}}},
    )
    result = wsseg("train-myo", "-p", str(config), "-w", str(tmp_path / "ws"), check=False)
    assert result.returncode != 0
    assert "error: batch size 1 is smaller than the 2 processes: raise it to at least 2" in result.stderr
    assert not (tmp_path / "ws" / "models" / "myocardium.pt").exists()
