"""Pickle weights (pytorch_model.bin, adapter_model.bin): train, export and import refuse them with
a clear error unless --allow-pickle / model.allow_pickle=true; with it, they load and equal the source."""

from __future__ import annotations

import shutil

import pytest
import torch

from eval_testutils import run_cli
from jft_train_utils import make_assets, run_config


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_assets(tmp_path_factory.mktemp("pickle"))


def _as_pickle(model_dir, dest, weights="model.safetensors", pickled="pytorch_model.bin"):
    """A copy of model_dir whose weights are a torch.save pickle instead of safetensors."""
    from safetensors.torch import load_file

    shutil.copytree(model_dir, dest)
    torch.save(load_file(str(dest / weights)), dest / pickled)
    (dest / weights).unlink()
    return dest


def test_train_refuses_pickle_base_unless_allowed(assets, tmp_path):
    from japanese_ft.errors import UserError
    from japanese_ft.train.loop import train

    base = _as_pickle(assets["model"], tmp_path / "bin-model")
    args = ("train.max_steps=1", "train.eval_every=0", "train.save_every=0")
    with pytest.raises(UserError, match=r"bin-model: weights only as pickle \(pytorch_model.bin\).*model.allow_pickle=true"):
        train(run_config(assets, "cpt", tmp_path / "a", f"model.name_or_path={base}", *args))
    allowed = train(run_config(assets, "cpt", tmp_path / "b", f"model.name_or_path={base}", "model.allow_pickle=true", *args))
    reference = train(run_config(assets, "cpt", tmp_path / "c", *args))
    assert allowed.losses == reference.losses  # the same weights were loaded


def test_import_model_pickle_needs_allow_pickle(assets, tmp_path):
    from safetensors.torch import load_file

    base = _as_pickle(assets["model"], tmp_path / "bin-model")
    code, err = run_cli(["import-model", str(base), "--output", str(tmp_path / "out")])
    assert code == 2 and "weights only as pickle" in err and "--allow-pickle" in err
    assert not (tmp_path / "out").exists()
    code, err = run_cli(["import-model", str(base), "--output", str(tmp_path / "out"), "--allow-pickle"])
    assert code == 0, err
    got, ref = load_file(str(tmp_path / "out" / "model.safetensors")), load_file(str(assets["model"] / "model.safetensors"))
    assert set(got) == set(ref) and all(torch.equal(got[k], ref[k]) for k in ref)


def test_export_refuses_pickle_base_and_adapter(assets, tmp_path):
    from japanese_ft.train.loop import train

    args = ("train.max_steps=1", "train.eval_every=0", "train.save_every=0")
    train(run_config(assets, "lora", tmp_path / "run", *args))
    adapter = tmp_path / "run" / "final"
    bin_base = _as_pickle(assets["model"], tmp_path / "bin-model")
    code, err = run_cli(["export", "--base", str(bin_base), "--adapter", str(adapter), "--output", str(tmp_path / "m1")])
    assert code == 2 and "bin-model: weights only as pickle" in err
    bin_adapter = _as_pickle(adapter, tmp_path / "bin-adapter", "adapter_model.safetensors", "adapter_model.bin")
    code, err = run_cli(["export", "--base", str(assets["model"]), "--adapter", str(bin_adapter), "--output", str(tmp_path / "m2")])
    assert code == 2 and "bin-adapter: weights only as pickle (adapter_model.bin)" in err
    code, err = run_cli(["export", "--base", str(bin_base), "--adapter", str(bin_adapter), "--output", str(tmp_path / "m3"),
                            "--allow-pickle"])
    assert code == 0, err
    code, err = run_cli(["export", "--base", str(assets["model"]), "--adapter", str(adapter), "--output", str(tmp_path / "m4")])
    assert code == 0, err
    from safetensors.torch import load_file

    a, b = load_file(str(tmp_path / "m3" / "model.safetensors")), load_file(str(tmp_path / "m4" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in b)
