"""The check a datamodule makes before reading: is its root the output of ``pc3d-data``?"""

from __future__ import annotations

from pathlib import Path


def require_preprocessed(root: str | Path, marker: str, dataset: str, make: str, synth: str) -> None:
    """Raise a one-line ``FileNotFoundError`` naming the commands that make ``root`` when it lacks ``marker``.

    Args:
        root: the datamodule's ``root``.
        marker: a folder every ``pc3d-data <dataset>`` output has (e.g. ``infos``).
        dataset: the dataset's name in the message.
        make: the preprocessing command, with ``{root}`` where the output folder goes.
        synth: the command that generates synthetic raw data for ``make``.
    """
    root = Path(root)
    if (root / marker).is_dir():
        return
    raise FileNotFoundError(
        f"data.init_args.root: {root} holds no preprocessed {dataset} data (no {root / marker}); "
        f"make it with `{make.format(root=root)}` (synthetic raw data: `{synth}`; the demo configs' "
        f"headers list both, and `pc3d demo` runs them)"
    )
