"""``pc3d`` and its checkpoints: ``--ckpt_path last``, the ``last.ckpt`` cadence, bad checkpoint files,
and a training process killed at a seeded random step that resumes to the uninterrupted result."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from cli_tiny import tiny_args, tiny_env

from pc3d.callbacks import LastCheckpoint
from pc3d.checkpoint import load_checkpoint
from pc3d.cli import PC3DCLI, main

STEPS_PER_EPOCH = 3  # TinyData: 12 samples in batches of 4


def last(run: Path) -> Path:
    return run / "checkpoints" / "last.ckpt"


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "error" in line.lower()]


@pytest.mark.parametrize("subcommand", ["validate", "test", "predict"])
def test_evaluating_without_a_last_checkpoint_is_an_error(tmp_path: Path, capsys, subcommand: str):
    rc = main(tiny_args(subcommand, tmp_path / "run", "--ckpt_path=last"))
    out, err = capsys.readouterr()
    assert rc == 2
    assert error_lines(err) == [
        f"pc3d: error: --ckpt_path last: no last.ckpt in {tmp_path / 'run' / 'checkpoints'}; run `pc3d fit` "
        "with the same --trainer.default_root_dir first, or pass the checkpoint file"
    ]
    assert "loss" not in out  # no metrics of an untrained model


def test_fit_last_without_a_checkpoint_says_it_starts_fresh(tmp_path: Path, capsys):
    run = tmp_path / "run"
    assert main(tiny_args("fit", run, "--trainer.max_epochs=1", "--ckpt_path=last")) == 0
    err = capsys.readouterr().err
    assert f"no last.ckpt in {run / 'checkpoints'}; training starts from scratch" in err
    assert load_checkpoint(last(run))["global_step"] == STEPS_PER_EPOCH
    # The next `--ckpt_path last` resumes that file, and test scores it.
    assert main(tiny_args("fit", run, "--trainer.max_epochs=2", "--ckpt_path=last")) == 0
    assert load_checkpoint(last(run))["global_step"] == 2 * STEPS_PER_EPOCH
    assert main(tiny_args("test", run, "--ckpt_path=last")) == 0
    assert "test_loss" in capsys.readouterr().out


def test_a_task_without_class_names_resumes_with_a_datamodule_that_has_them(tmp_path: Path):
    run = tmp_path / "run"
    named = "--data=cli_tiny.NamedTinyData"
    assert main([*tiny_args("fit", run, "--trainer.max_epochs=1"), named]) == 0
    assert main([*tiny_args("fit", run, "--trainer.max_epochs=2", "--ckpt_path=last"), named]) == 0
    assert load_checkpoint(last(run))["global_step"] == 2 * STEPS_PER_EPOCH
    assert main([*tiny_args("test", run, "--ckpt_path=last"), named]) == 0


def test_last_checkpoint_holds_the_end_of_fit_whatever_the_validation_cadence(tmp_path: Path):
    """8 steps with validation every 5 epochs: last.ckpt is at step 8 (not at an epoch end, not at a validation)."""
    run = tmp_path / "run"
    old = os.umask(0o027)
    try:
        rc = main(tiny_args("fit", run, "--trainer.max_steps=8", "--trainer.check_val_every_n_epoch=5"))
    finally:
        os.umask(old)
    assert rc == 0
    ckpt = load_checkpoint(last(run))
    assert ckpt["global_step"] == 8
    assert last(run).stat().st_mode & 0o777 == 0o640  # follows the umask
    assert sorted(p.name for p in last(run).parent.iterdir()) == ["last.ckpt"]


def test_step_interval_from_yaml_and_command_line(tmp_path: Path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"checkpoint_every_n_steps": 5}))

    def interval(*extra: str) -> int:
        args = tiny_args("fit", tmp_path / "run", "-c", str(config), *extra)[1:]  # run=False: no subcommand
        cli = PC3DCLI(args=args, run=False)
        (callback,) = [c for c in cli.trainer.callbacks if isinstance(c, LastCheckpoint)]
        assert callback.dirpath == str(tmp_path / "run" / "checkpoints")
        return callback.every_n_train_steps

    assert interval() == 5
    assert interval("--checkpoint_every_n_steps=7") == 7


def test_negative_step_interval_is_a_bad_argument(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as info:
        main(tiny_args("fit", tmp_path / "run", "--checkpoint_every_n_steps=-1"))
    assert info.value.code == 2
    assert "checkpoint_every_n_steps" in capsys.readouterr().err


def _bad_checkpoints(tmp_path: Path, good: Path) -> dict[str, tuple[Path, str]]:
    data = good.read_bytes()
    cut = random.Random(5).randrange(10, len(data) - 10)
    files = {
        "empty": (b"", "is empty (0 bytes)"),
        "text": (b"epoch: 3\n", "not a checkpoint"),
        "truncated": (data[:cut], "truncated or corrupt"),
    }
    out = {}
    for name, (content, needle) in files.items():
        path = tmp_path / f"{name}.ckpt"
        path.write_bytes(content)
        out[name] = (path, needle)
    bare = tmp_path / "bare.ckpt"
    torch.save(load_checkpoint(good)["state_dict"], bare)
    out["bare"] = (bare, "bare weights")
    out["missing"] = (tmp_path / "missing.ckpt", "no such checkpoint file")
    return out


def test_bad_checkpoint_is_one_line_and_exit_2(tmp_path: Path, capsys):
    good_run = tmp_path / "good"
    assert main(tiny_args("fit", good_run, "--trainer.max_epochs=1")) == 0
    capsys.readouterr()
    for name, (path, needle) in _bad_checkpoints(tmp_path, last(good_run)).items():
        for subcommand in ("fit", "test"):
            rc = main(tiny_args(subcommand, tmp_path / f"run_{name}", f"--ckpt_path={path}"))
            out, err = capsys.readouterr()
            assert rc == 2, (name, subcommand, err)
            lines = error_lines(err)
            assert len(lines) == 1 and lines[0].startswith(f"pc3d: error: {path}: "), (name, err)
            assert needle in lines[0] and "Traceback" not in err and "weights_only=False" not in err
            assert "loss" not in out


# ------------------------------------------------------------------------ killed and resumed training


def _fit_args(run: Path, every_n: int, resumable: bool) -> list[str]:
    return tiny_args(
        "fit",
        run,
        "--trainer.max_epochs=4",
        "--trainer.check_val_every_n_epoch=5",
        f"--checkpoint_every_n_steps={every_n}",
        f"--data.init_args.resumable={str(resumable).lower()}",
    )


@pytest.mark.parametrize(
    ("every_n", "resumable", "seed"),
    [(0, False, 23), (2, True, 28)],
    ids=["epoch_ends", "every_2_steps"],
)
def test_killed_fit_resumes_to_the_uninterrupted_weights(
    tmp_path: Path, one_thread, every_n, resumable, seed
):
    """SIGKILL a `pc3d fit` at a seeded random step: last.ckpt holds the newest epoch end or step
    multiple before it, and `--ckpt_path last` reaches exactly the weights of an uninterrupted run."""
    total = 4 * STEPS_PER_EPOCH
    kill_at = random.Random(seed).randrange(STEPS_PER_EPOCH + 1, total)

    clean = tmp_path / "clean"
    assert main(_fit_args(clean, every_n, resumable)) == 0
    want = load_checkpoint(last(clean))
    assert want["global_step"] == total

    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "pc3d.cli", *_fit_args(run, every_n, resumable)]
    res = subprocess.run(cmd, env=tiny_env(TINY_KILL_AT_STEP=str(kill_at)), capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert res.returncode == -9, res.stderr[-2000:]
    saved = [s for s in range(1, kill_at + 1) if s % STEPS_PER_EPOCH == 0 or (every_n and s % every_n == 0)]
    assert load_checkpoint(last(run))["global_step"] == saved[-1]

    assert main([*_fit_args(run, every_n, resumable), "--ckpt_path=last"]) == 0
    got = load_checkpoint(last(run))
    assert got["global_step"] == total
    for key, value in want["state_dict"].items():
        assert torch.equal(got["state_dict"][key], value), key
    for a, b in zip(
        want["optimizer_states"][0]["state"].values(), got["optimizer_states"][0]["state"].values()
    ):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])


def test_a_second_writer_of_last_ckpt_is_refused(tmp_path: Path, capsys):
    run = tmp_path / "run"
    config = tmp_path / "cb.yaml"
    config.write_text(yaml.safe_dump({"trainer": {"callbacks": [{
        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
        "init_args": {"dirpath": str(run / "checkpoints"), "save_last": True}}]}}))  # fmt: skip
    assert main([*tiny_args("fit", run, "--trainer.max_epochs=1"), "-c", str(config)]) == 1
    lines = error_lines(capsys.readouterr().err)
    assert lines[0].startswith(
        "pc3d: error: trainer.callbacks: ModelCheckpoint(save_last=True) would also write"
    )
    assert not (run / "checkpoints").exists() or not any((run / "checkpoints").iterdir())
