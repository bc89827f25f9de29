"""The distribution: ``pc3d.*`` mapping in a built wheel, shipped configs, console scripts."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from pc3d.cli import builtin_configs, main, resolve_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (whl,) = out.glob("pc3d-*.whl")
    return whl


def test_wheel_contains_mapped_packages_and_configs(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("pc3d/kernels/__init__.py", "pc3d/kernels/sparse.py", "pc3d/viz/__init__.py",
                     "pc3d/tools/__init__.py", "pc3d/tools/data_cli.py", "pc3d/configs/__init__.py"):  # fmt: skip
        assert required in names, required
    shipped = {
        n.removeprefix("pc3d/configs/")
        for n in names
        if n.startswith("pc3d/configs/") and n.endswith(".yaml")
    }
    assert shipped == set(builtin_configs())
    assert not any(n.startswith(("tests/", "kernels/", "viz/", "tools/")) for n in names)


def test_wheel_alone_imports(wheel: Path, tmp_path: Path):
    """Import from the unpacked wheel only: ``-S`` skips site (and so the editable finder)."""
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    deps = sysconfig.get_paths()["purelib"]
    code = "import pc3d, pc3d.kernels, pc3d.viz, pc3d.tools, pc3d.configs; print(pc3d.kernels.__file__)"
    res = subprocess.run(
        [sys.executable, "-S", "-c", code],
        env={"PYTHONPATH": f"{target}:{deps}"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert res.stdout.strip().startswith(str(target))


def test_console_scripts_help():
    bindir = Path(sys.executable).parent
    for script in ("pc3d", "pc3d-data", "pc3d-eval", "pc3d-viz"):
        res = subprocess.run([bindir / script, "--help"], capture_output=True, text=True)
        assert res.returncode == 0, (script, res.stderr[-2000:])
        assert "usage" in res.stdout.lower()


def test_print_config_runs():
    res = subprocess.run(
        [Path(sys.executable).parent / "pc3d", "fit", "--print_config"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "trainer:" in res.stdout and "model:" in res.stdout


def test_shipped_config_resolves_by_name(tmp_path: Path):
    name = builtin_configs()[0]
    assert Path(resolve_config(name)).is_file()
    assert Path(resolve_config(name.removesuffix(".yaml"))).is_file()
    local = tmp_path / name
    local.write_text("{}")
    assert resolve_config(str(local)) == str(local)


def test_unknown_config_is_a_clear_error(capsys):
    assert main(["fit", "-c", "no_such_config.yaml"]) == 2
    err = capsys.readouterr().err
    assert "no_such_config.yaml" in err and "shipped:" in err
