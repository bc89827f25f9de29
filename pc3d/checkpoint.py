"""Reading and writing pc3d checkpoints (the ``.ckpt`` files ``pc3d fit`` writes).

Every checkpoint pc3d reads goes through :func:`load_checkpoint`: it loads with
``torch.load(weights_only=True)`` (tensors and plain containers only, never arbitrary Python
objects) and turns every way a file can be wrong into one :class:`CheckpointError` line that
names the file and says what was expected. Lightning's own loading (``--ckpt_path`` of
fit/validate/test/predict) is routed through it by :class:`PC3DCheckpointIO`.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from pc3d.io import atomic_write

#: Keys every pc3d checkpoint holds (Lightning's layout with the task's saved hyper-parameters).
REQUIRED_KEYS = ("state_dict", "hyper_parameters")

_EXPECTED = "expected a checkpoint written by pc3d fit"
_ZIP_MAGIC = b"PK\x03\x04"
#: The file in which Lightning's ``ddp_spawn`` hands the workers' final weights (a bare state_dict) back.
_SPAWN_WEIGHTS_NAME = ".temp.ckpt"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message is one line naming the file."""


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load and validate a pc3d checkpoint.

    Args:
        path: the ``.ckpt`` file.
        map_location: where tensors go, as for :func:`torch.load` (default ``"cpu"``).

    Returns:
        The checkpoint dict: ``state_dict`` (parameter name -> tensor), ``hyper_parameters`` (the
        task's constructor arguments) and Lightning's training state (``epoch``, ``global_step``,
        ``optimizer_states``, ``loops`` ...) when it was written during ``fit``.

    Raises:
        CheckpointError: (a ``ValueError``) for a missing, unreadable, empty, truncated or non-torch
            file, a file holding Python objects that a safe load refuses, a bare ``state_dict``, or
            a layout without ``state_dict``/``hyper_parameters``.
    """
    ckpt = read_checkpoint_file(path, map_location)
    _check_layout(Path(path), ckpt)
    return ckpt


def read_checkpoint_file(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with every failure as a one-line :class:`CheckpointError`;
    unlike :func:`load_checkpoint` it does not check the layout of what was loaded."""
    path = Path(path)
    check_checkpoint_file(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{path}: {_EXPECTED}; {_unsafe_reason(err)}") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({reason}); {_EXPECTED}") from None


def check_checkpoint_file(path: str | os.PathLike) -> None:
    """Cheap checks of a checkpoint file before it is loaded (exists, a file, readable, a complete torch
    zip archive); :class:`CheckpointError` otherwise."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory; {_EXPECTED} (a .ckpt file)")
    try:
        with path.open("rb") as f:
            head = f.read(len(_ZIP_MAGIC))
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({err.strerror or err})") from None
    if not head:
        raise CheckpointError(f"{path}: is empty (0 bytes); {_EXPECTED}")
    if head != _ZIP_MAGIC:
        raise CheckpointError(
            f"{path}: not a checkpoint (starts with {head!r}, not a torch zip archive); {_EXPECTED}"
        )
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path}: truncated or corrupt checkpoint (the zip directory at its end is missing); {_EXPECTED}"
        )


def _unsafe_reason(err: BaseException) -> str:
    """What a ``weights_only`` load refused, without torch's advice on how to load it unsafely."""
    text = str(err)
    match = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if match:
        return f"it holds a Python object of type {match.group(1)}, which a safe (weights-only) load refuses"
    match = re.search(r"WeightsUnpickler error: ([^\n]*)", text)
    detail = match.group(1).split(". ")[0].strip() if match else "it is not a torch checkpoint"
    return f"a safe (weights-only) load refused it ({detail})"


def _check_layout(path: Path, ckpt: Any) -> None:
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(f"{path}: holds a {type(ckpt).__name__}, not a checkpoint dict; {_EXPECTED}")
    if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise CheckpointError(
            f"{path}: holds bare weights (a state_dict) without the task's hyper-parameters; {_EXPECTED} "
            f"(keys {list(REQUIRED_KEYS)})"
        )
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        found = ", ".join(repr(k) for k in list(ckpt)[:6]) or "none"
        raise CheckpointError(f"{path}: missing {missing} (found keys {found}); {_EXPECTED}")
    state = ckpt["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(
            f"{path}: 'state_dict' is not a mapping of parameter names to tensors; {_EXPECTED}"
        )
    if not isinstance(ckpt["hyper_parameters"], Mapping):
        raise CheckpointError(
            f"{path}: 'hyper_parameters' is a {type(ckpt['hyper_parameters']).__name__}, expected a mapping"
        )


def save_checkpoint_file(checkpoint: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write ``checkpoint`` to ``path`` atomically (:func:`pc3d.io.atomic_write`): a failing
    ``torch.save`` or a kill mid-write leaves an existing file untouched; the file follows the
    user's umask."""
    atomic_write(path, lambda f: torch.save(dict(checkpoint), f))


class PC3DCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO that reads through :func:`load_checkpoint` (always weights-only,
    one-line :class:`CheckpointError`) and writes through :func:`save_checkpoint_file`."""

    def load_checkpoint(self, path, map_location=lambda storage, loc: storage, weights_only=None) -> dict:
        """Lightning's hook; ``weights_only`` is ignored: pc3d always loads weights-only."""
        if os.path.basename(os.fspath(path)) == _SPAWN_WEIGHTS_NAME:
            return read_checkpoint_file(path, map_location=map_location)
        return load_checkpoint(path, map_location=map_location)

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        """Lightning's hook; ``storage_options`` is not supported."""
        if storage_options is not None:
            raise TypeError("PC3DCheckpointIO.save_checkpoint does not take storage_options")
        save_checkpoint_file(checkpoint, path)
