"""The ``pc3d`` command: LightningCLI (fit/validate/test/predict) with YAML configs.

Model and datamodule are chosen by ``class_path`` in the config (subclass mode), e.g.::

    pc3d fit -c meepo_demo.yaml --trainer.max_epochs 5
    pc3d test -c meepo_demo.yaml --ckpt_path last
    pc3d fit -c meepo_demo.yaml --checkpoint_every_n_steps 500 --ckpt_path last   # resume; save every 500 steps
    pc3d demo                      # the main job end to end on synthetic data (see pc3d.demo)
    pc3d infer --ckpt last.ckpt scan.ply --out pred/   # your own scans (see pc3d.infer.cli)

A config given by bare file name that does not exist on disk is looked up among the configs
shipped in the package (``pc3d.configs``), so built-in configs need no path.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from jsonargparse import Namespace
from jsonargparse.typing import NonNegativeInt
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

from pc3d.checkpoint import CheckpointError, PC3DCheckpointIO, load_checkpoint
from pc3d.tasks.hparams import upgrade_hyperparameters
from pc3d.tasks.interface import ClassNamesError, format_names

CONFIG_FLAGS = ("-c", "--config")


def builtin_config_dir() -> Path:
    """Folder of the YAML configs shipped as package data."""
    return Path(str(resources.files("pc3d.configs")))


def builtin_configs() -> list[str]:
    """Names of the shipped configs relative to their folder, e.g. ``meepo_demo.yaml``, ``mixers/agent_demo.yaml``."""
    root = builtin_config_dir()
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.yaml"))


def resolve_config(value: str) -> str:
    """Return ``value`` if it is a file, else the shipped config of that name (with or without ``.yaml``).

    Raises:
        FileNotFoundError: naming the config and listing the shipped ones.
    """
    if os.path.exists(value) or value.lstrip().startswith(("{", "[")) or "\n" in value:
        return value
    for name in (value, f"{value}.yaml"):
        candidate = builtin_config_dir() / name
        if candidate.is_file():
            return str(candidate)
    raise FileNotFoundError(
        f"--config {value!r}: no such file, and no shipped config of that name "
        f"(shipped: {', '.join(builtin_configs()) or 'none'})"
    )


def resolve_config_args(argv: list[str]) -> list[str]:
    """Rewrite ``-c NAME`` / ``--config NAME`` / ``--config=NAME`` to shipped config paths where needed."""
    out: list[str] = []
    it = iter(range(len(argv)))
    for i in it:
        arg = argv[i]
        if arg in CONFIG_FLAGS and i + 1 < len(argv):
            out += [arg, resolve_config(argv[i + 1])]
            next(it, None)
        elif arg.startswith("--config="):
            out.append("--config=" + resolve_config(arg.split("=", 1)[1]))
        else:
            out.append(arg)
    return out


class PC3DCLI(LightningCLI):
    """LightningCLI with pc3d's defaults.

    - Model and datamodule by ``class_path`` (subclass mode).
    - Re-running ``fit`` in the same directory overwrites the saved ``config.yaml``.
    - Unless the config sets them: CSV and TensorBoard loggers under ``default_root_dir``.
    - Unless ``enable_checkpointing: false``: a :class:`~pc3d.callbacks.LastCheckpoint` keeping
      ``<default_root_dir>/checkpoints/last.ckpt`` at the newest state (every training epoch end,
      the end of fit, and every ``checkpoint_every_n_steps`` optimizer steps when that is > 0).
    - ``--ckpt_path last`` is that file. When it does not exist, ``fit`` says so and starts from
      scratch; validate/test/predict stop with an error instead of scoring an untrained model.
    - Every checkpoint is read through :func:`pc3d.checkpoint.load_checkpoint` (weights-only, a
      one-line :class:`~pc3d.checkpoint.CheckpointError` for a bad file).
    - The task's ``class_names`` are the datamodule's ``class_names`` (linked on instantiation:
      :meth:`task_class_names`); ``model.init_args.class_names`` is for a datamodule without them.
    """

    #: class names configured for the task, and where they came from (read by :meth:`task_class_names`)
    _given_class_names: list[str] | None = None
    _given_class_names_source = (
        "model.init_args.class_names",
        "drop them, or configure the datamodule for those classes",
    )
    #: the datamodule's class (its name) and its class names, once linked
    _data_class = ""
    _data_class_names: list[str] | None = None

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        """``args`` as on the command line; ``None`` reads ``sys.argv``."""
        super().__init__(
            LightningModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            # Re-running ``fit`` in the same directory must not crash on the saved config.
            save_config_kwargs={"overwrite": True},
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--checkpoint_every_n_steps",
            type=NonNegativeInt,
            default=0,
            help="also write <default_root_dir>/checkpoints/last.ckpt every this many optimizer steps "
            "(0: only at every training epoch end and at the end of fit)",
        )
        # A datamodule without a ``class_names`` attribute leaves the link out (jsonargparse skips it).
        parser.link_arguments(
            "data.class_names",
            "model.init_args.class_names",
            compute_fn=self.task_class_names,
            apply_on="instantiate",
        )

    def task_class_names(self, data_class_names: Sequence[str] | None) -> list[str] | None:
        """The task's ``class_names`` from the datamodule's ``class_names``: those, or when they are
        ``None`` the configured ``model.init_args.class_names`` (or those of ``--ckpt_path``'s
        hyper-parameters).

        Raises:
            ValueError: configured names that differ from the datamodule's, naming both.
        """
        given = self._given_class_names
        if data_class_names is None:
            return given
        names = [str(n) for n in data_class_names]
        self._data_class_names = names
        if given is not None and given != names:
            source, remedy = self._given_class_names_source
            raise _ClassNamesConflict(
                f"{source} ({format_names(given)}) differ from those of the datamodule {self._data_class} "
                f"({format_names(names)}): the task's class names come from the datamodule; {remedy}"
            )
        return names

    def instantiate_classes(self) -> None:
        """LightningCLI's, with one clear line when the class names do not fit the network."""
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        given = _config_value(config, "model", "init_args", "class_names")
        self._given_class_names = None if given is None else [str(n) for n in given]
        self._data_class = str(_config_value(config, "data", "class_path") or "").rsplit(".", 1)[-1]
        self._data_class_names = None
        try:
            super().instantiate_classes()
        except ValueError as err:
            conflict = _cause(err, _ClassNamesConflict)
            if conflict is not None:
                raise ValueError(str(conflict)) from err
            mismatch = _cause(err, ClassNamesError)
            if mismatch is None:
                raise
            names = self._data_class_names
            if names is None:
                raise ValueError(f"model.init_args.{mismatch}") from err
            raise ValueError(
                f"the datamodule {self._data_class} has {_classes(len(names))} ({format_names(names)}) and "
                f"the network {mismatch.network} {_classes(mismatch.num_classes)}: the task's class names "
                "come from the datamodule, so configure both for the same classes"
            ) from err

    def before_instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        if config is None:
            return
        trainer = config.trainer
        root = trainer.get("default_root_dir") or "."
        if trainer.get("logger") in (None, True):
            trainer.logger = [
                _class_config("lightning.pytorch.loggers.CSVLogger", save_dir=root, name="csv"),
                _class_config(
                    "lightning.pytorch.loggers.TensorBoardLogger", save_dir=root, name="tensorboard"
                ),
            ]
        callbacks = list(trainer.get("callbacks") or [])
        if trainer.get("enable_checkpointing") is not False and not any(
            str(getattr(c, "class_path", "")).endswith("LastCheckpoint") for c in callbacks
        ):
            callbacks.append(
                _class_config(
                    "pc3d.callbacks.LastCheckpoint",
                    dirpath=os.path.join(root, "checkpoints"),
                    every_n_train_steps=int(config.get("checkpoint_every_n_steps") or 0),
                )
            )
            trainer.callbacks = callbacks

    def _parse_ckpt_path(self) -> None:
        """Resolve ``--ckpt_path last``, validate the checkpoint through :func:`load_checkpoint` and,
        as LightningCLI does, take the model's hyper-parameters from it."""
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        ckpt_path = config.get("ckpt_path")
        if ckpt_path == "last":
            ckpt_path = config.ckpt_path = find_last_checkpoint(config, subcommand)
        if ckpt_path is None or ckpt_path in ("best", "hpc"):
            return
        hparams = upgrade_hyperparameters(dict(load_checkpoint(ckpt_path)["hyper_parameters"]))
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        if "class_names" in hparams and not _takes(hparams.get("_class_path"), "class_names"):
            hparams.pop("class_names")  # a task without class names, given the datamodule's by the link
        if hparams.get("class_names") is not None:
            self._given_class_names_source = (
                f"the class names of --ckpt_path {ckpt_path}",
                "configure the datamodule for the classes that checkpoint was trained on",
            )
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        try:
            self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)
        except SystemExit:
            sys.stderr.write(
                f"pc3d: error: --ckpt_path {ckpt_path}: its hyper-parameters do not fit the config\n"
            )
            raise

    def before_fit(self) -> None:
        self._use_pc3d_checkpoint_io()

    def before_validate(self) -> None:
        self._use_pc3d_checkpoint_io()

    def before_test(self) -> None:
        self._use_pc3d_checkpoint_io()

    def before_predict(self) -> None:
        self._use_pc3d_checkpoint_io()

    def _use_pc3d_checkpoint_io(self) -> None:
        """Lightning reads and writes checkpoints through :class:`PC3DCheckpointIO` (unless the config
        chose another checkpoint IO plugin)."""
        strategy = self.trainer.strategy
        if type(strategy.checkpoint_io) is TorchCheckpointIO:
            strategy.checkpoint_io = PC3DCheckpointIO()


class _ClassNamesConflict(ValueError):
    """Configured class names that differ from the datamodule's."""


def _config_value(config: Namespace | None, *keys: str) -> object:
    """``config[keys[0]][keys[1]]...``, or ``None`` where a level is missing."""
    node: object = config
    for key in keys:
        if not isinstance(node, Namespace):
            return None
        node = node.get(key)
    return node


def _takes(class_path: object, name: str) -> bool:
    """Whether the class at ``class_path`` takes an init argument ``name`` (or any, by ``**kwargs``);
    ``True`` when it cannot be imported (its own error comes later)."""
    module, _, attr = str(class_path).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attr)
        params = inspect.signature(cls.__init__).parameters.values()
    except (ImportError, AttributeError, TypeError, ValueError):
        return True
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _classes(n: int) -> str:
    return f"{n} class" if n == 1 else f"{n} classes"


def _cause(err: BaseException, kind: type[BaseException]) -> BaseException | None:
    """``err`` or the first exception of its cause/context chain that is a ``kind``."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, kind):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def find_last_checkpoint(config: Namespace, subcommand: str) -> str | None:
    """The file ``--ckpt_path last`` means for a subcommand's ``config``: the newest existing
    ``last.ckpt`` of the configured ``LastCheckpoint`` callbacks (or of the one pc3d adds, in
    ``<default_root_dir>/checkpoints``) and ``last*.ckpt`` of ``ModelCheckpoint`` callbacks with a ``dirpath``.

    Returns ``None`` (after saying so on stderr) for ``fit`` without one: training starts from scratch.

    Raises:
        CheckpointError: for validate/test/predict without one, naming the folder(s) searched.
    """
    trainer = config.trainer
    root = trainer.get("default_root_dir") or "."
    folders: list[Path] = []
    patterns: list[str] = []
    for callback in trainer.get("callbacks") or []:
        class_path = str(getattr(callback, "class_path", ""))
        init = getattr(callback, "init_args", None) or Namespace()
        if class_path.endswith("LastCheckpoint"):
            folders.append(Path(init.get("dirpath") or os.path.join(root, "checkpoints")))
            patterns.append("last.ckpt")
        elif class_path.endswith("ModelCheckpoint") and init.get("dirpath") and init.get("save_last"):
            folders.append(Path(init.dirpath))
            patterns.append("last*.ckpt")
    if not folders and trainer.get("enable_checkpointing") is not False:
        folders, patterns = [Path(root) / "checkpoints"], ["last.ckpt"]
    found = [p for folder, pattern in zip(folders, patterns) for p in folder.glob(pattern) if p.is_file()]
    if found:
        return str(max(found, key=lambda p: p.stat().st_mtime))
    where = ", ".join(sorted({str(f) for f in folders})) or f"{root} (checkpointing is disabled)"
    if subcommand == "fit":
        print(
            f"pc3d: --ckpt_path last: no last.ckpt in {where}; training starts from scratch", file=sys.stderr
        )
        return None
    raise CheckpointError(
        f"--ckpt_path last: no last.ckpt in {where}; run `pc3d fit` with the same "
        "--trainer.default_root_dir first, or pass the checkpoint file"
    )


def _class_config(class_path: str, **init_args: object) -> Namespace:
    return Namespace(class_path=class_path, init_args=Namespace(**init_args))


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point of ``pc3d``."""
    from_command_line = argv is None
    raw = list(sys.argv[1:] if from_command_line else argv)
    if raw[:1] == ["demo"]:
        from pc3d.demo import main as demo_main

        return demo_main(raw[1:], command_line=from_command_line)
    if raw[:1] == ["infer"]:
        from pc3d.infer.cli import main as infer_main

        return infer_main(raw[1:])
    try:
        args = resolve_config_args(raw)
    except FileNotFoundError as err:
        print(f"pc3d: error: {err}", file=sys.stderr)
        return 2
    try:
        if from_command_line:
            # LightningCLI reads sys.argv itself; hand it the resolved config paths there.
            sys.argv[1:] = args
            PC3DCLI()
        else:
            PC3DCLI(args=args)
    except CheckpointError as err:  # a bad --ckpt_path is a bad argument
        if os.environ.get("PC3D_DEBUG"):
            raise
        print(f"pc3d: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # user errors get one clear line; PC3D_DEBUG=1 shows the traceback
        message = user_error_message(err, args)
        if message is None or os.environ.get("PC3D_DEBUG"):
            raise
        print(f"pc3d: error: {message}\n(set PC3D_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    return 0


def _ckpt_path(args: list[str]) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith("--ckpt_path="):
            return arg.split("=", 1)[1]
        if arg == "--ckpt_path" and i + 1 < len(args):
            return args[i + 1]
    return None


def user_error_message(err: BaseException, args: list[str]) -> str | None:
    """A one-line explanation for errors caused by the user's input, ``None`` for real bugs."""
    text = str(err)
    ckpt = _ckpt_path(args)
    if isinstance(err, RuntimeError) and "Error(s) in loading state_dict" in text:
        first = text.splitlines()[0] if text else ""
        details = " ".join(line.strip() for line in text.splitlines()[1:3])
        return (
            f"checkpoint {ckpt or '(given)'} does not fit the model of this config ({first.strip()} "
            f"{details[:300]}). Was it trained with another model or config?"
        )
    if isinstance(err, (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)):
        return text
    if isinstance(err, ValueError):
        return text
    return None


if __name__ == "__main__":
    sys.exit(main())
