"""``pc3d.checkpoint.load_checkpoint`` on a real checkpoint of ``pc3d fit`` and corrupted copies of it."""

from __future__ import annotations

import collections
import os
import random
import zipfile
from pathlib import Path

import pytest
import torch
from cli_tiny import tiny_args

from pc3d.checkpoint import CheckpointError, PC3DCheckpointIO, load_checkpoint
from pc3d.cli import main


@pytest.fixture(scope="module")
def real_ckpt(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("fit")
    assert main(tiny_args("fit", run, "--trainer.max_epochs=1")) == 0
    return run / "checkpoints" / "last.ckpt"


def expect_error(path: Path, *needles: str) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    assert "weights_only=False" not in message and "weights_only" not in message.replace("weights-only", "")
    for needle in needles:
        assert needle in message, message
    return message


def test_real_checkpoint_loads(real_ckpt: Path):
    ckpt = load_checkpoint(real_ckpt)
    assert set(ckpt["state_dict"]) == {"layer.weight", "layer.bias"}
    assert ckpt["hyper_parameters"]["lr"] == 0.05
    assert ckpt["global_step"] == 3
    assert ckpt["state_dict"]["layer.weight"].device.type == "cpu"


def test_truncated_at_seeded_random_offsets(real_ckpt: Path, tmp_path: Path):
    data = real_ckpt.read_bytes()
    rng = random.Random(18)
    offsets = sorted({1, 3, 4, 30, len(data) - 1, *(rng.randrange(5, len(data) - 1) for _ in range(12))})
    for offset in offsets:
        bad = tmp_path / f"cut_{offset}.ckpt"
        bad.write_bytes(data[:offset])
        expect_error(bad, "expected a checkpoint written by pc3d fit")


def test_flipped_bytes_never_escape_as_other_errors(real_ckpt: Path, tmp_path: Path):
    """A corrupted byte either still loads into a valid layout or is a CheckpointError, never a crash."""
    data = bytearray(real_ckpt.read_bytes())
    rng = random.Random(7)
    for k in range(16):
        bad = tmp_path / f"flip_{k}.ckpt"
        copy = bytearray(data)
        pos = rng.randrange(len(copy))
        copy[pos] ^= 0xFF
        bad.write_bytes(bytes(copy))
        try:
            ckpt = load_checkpoint(bad)
        except CheckpointError as e:
            assert str(e).startswith(f"{bad}: ") and "\n" not in str(e)
        else:
            assert "state_dict" in ckpt and "hyper_parameters" in ckpt


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "is empty (0 bytes)"),
        (b"hello, I am a text file\n", "not a checkpoint (starts with b'hell'"),
        ("\ufeffmodel: meepo\n".encode(), "not a checkpoint"),
        (bytes(range(256)) * 4, "not a checkpoint"),
        (b"PK\x03\x04" + b"\x00" * 60, "truncated or corrupt"),
    ],
    ids=["empty", "text", "bom_text", "binary", "zip_header_only"],
)
def test_not_a_checkpoint(tmp_path: Path, content: bytes, needle: str):
    bad = tmp_path / "x.ckpt"
    bad.write_bytes(content)
    expect_error(bad, needle)


def test_missing_and_directory(tmp_path: Path):
    expect_error(tmp_path / "nope.ckpt", "no such checkpoint file")
    expect_error(tmp_path, "is a directory")


def test_unreadable(real_ckpt: Path, tmp_path: Path, monkeypatch):
    bad = tmp_path / "locked.ckpt"
    bad.write_bytes(real_ckpt.read_bytes())
    bad.chmod(0)
    if os.geteuid() == 0:  # root reads anyway; check what an ordinary user gets
        real_open = Path.open

        def locked_open(self, *args, **kwargs):
            if self == bad:
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", locked_open)
    assert expect_error(bad) == f"{bad}: cannot read the checkpoint (Permission denied)"


class Foreign:
    """A class a weights-only load refuses."""


@pytest.mark.parametrize(
    ("obj", "needle"),
    [
        ({"layer.weight": torch.zeros(2)}, "bare weights (a state_dict)"),
        (collections.OrderedDict(w=torch.zeros(1)), "bare weights"),
        ([torch.zeros(1)], "holds a list, not a checkpoint dict"),
        (
            {"state_dict": {"w": torch.zeros(1)}, "pytorch-lightning_version": "2.6.0"},
            "missing ['hyper_parameters']",
        ),
        ({"model": {"w": torch.zeros(1)}}, "missing ['state_dict', 'hyper_parameters']"),
        (
            {"state_dict": {"w": 1.0}, "hyper_parameters": {}},
            "'state_dict' is not a mapping of parameter names",
        ),
        ({"state_dict": {}, "hyper_parameters": [1]}, "'hyper_parameters' is a list"),
        (
            {"state_dict": {}, "hyper_parameters": {"x": Foreign()}},
            "Foreign, which a safe (weights-only) load",
        ),
    ],
    ids=[
        "state_dict",
        "ordered_state_dict",
        "list",
        "no_hparams",
        "foreign_layout",
        "not_tensors",
        "hparams_list",
        "unsafe_object",
    ],  # fmt: skip
)
def test_wrong_layout(tmp_path: Path, obj, needle: str):
    bad = tmp_path / "other.ckpt"
    torch.save(obj, bad)
    expect_error(bad, needle)


def test_legacy_pickle_format_is_refused(tmp_path: Path):
    bad = tmp_path / "legacy.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}}, bad, _use_new_zipfile_serialization=False)
    expect_error(bad, "not a torch zip archive")


def test_checkpoint_io_round_trip_follows_umask(real_ckpt: Path, tmp_path: Path):
    io = PC3DCheckpointIO()
    ckpt = io.load_checkpoint(real_ckpt)
    old = os.umask(0o027)
    try:
        io.save_checkpoint(ckpt, tmp_path / "sub" / "copy.ckpt")
    finally:
        os.umask(old)
    out = tmp_path / "sub" / "copy.ckpt"
    assert out.stat().st_mode & 0o777 == 0o640
    assert zipfile.is_zipfile(out)
    again = load_checkpoint(out)
    assert torch.equal(again["state_dict"]["layer.weight"], ckpt["state_dict"]["layer.weight"])
    torch.save({"w": torch.zeros(1)}, tmp_path / "bare.ckpt")
    with pytest.raises(CheckpointError, match="bare weights"):
        io.load_checkpoint(tmp_path / "bare.ckpt", weights_only=False)


def test_spawn_weights_file_may_be_bare(tmp_path: Path):
    """Lightning's ddp_spawn hands the final weights back as a bare state_dict in ``.temp.ckpt``."""
    path = tmp_path / ".temp.ckpt"
    torch.save({"w": torch.ones(2)}, path)
    assert torch.equal(PC3DCheckpointIO().load_checkpoint(path)["w"], torch.ones(2))
