"""Package-dir mapping: ``kernels/``, ``viz/``, ``tools/`` and ``configs/`` install as ``pc3d.*``.

pyproject.toml holds all metadata; this file only computes the package list, because the
mapped folders' sub-packages cannot be listed statically without going stale.
"""

from setuptools import find_packages, setup

MAPPED = {"pc3d.kernels": "kernels", "pc3d.viz": "viz", "pc3d.tools": "tools", "pc3d.configs": "configs"}

packages = find_packages(include=["pc3d", "pc3d.*"])
package_dir = {"pc3d": "pc3d"}
for name, path in MAPPED.items():
    package_dir[name] = path
    packages += [name] + [f"{name}.{sub}" for sub in find_packages(path)]

setup(packages=packages, package_dir=package_dir)
