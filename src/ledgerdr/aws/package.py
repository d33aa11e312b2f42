"""`ledgerdr aws package`: the Lambda deployment zip.

The dependencies are installed with pip for the Lambda runtime and architecture chosen, never for this
machine: `pip install --target DIR --platform manylinux2014_<arch> --implementation cp --python-version
3.12 --only-binary=:all:` takes only wheels built for Lambda's Linux (so amazon.ion, orjson and
psycopg-binary bring their own compiled code), and fails rather than build from source. QLDB's service
models, which botocore no longer ships, come from the botocore-a-la-carte packages (installed without
their dependencies: they pin an old botocore).

ledgerdr itself goes in as pure Python by default: its C accelerators are optional, and an extension
built on this machine would not load on Lambda unless it matches the runtime's Python and Linux. To put
them in, build a wheel for the runtime (for example `pip wheel . -w dist/` inside the
`public.ecr.aws/sam/build-python3.12` image, or with cibuildwheel) and pass it with `--ledgerdr-wheel`.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

# Lambda's Python runtimes and the pip platform tag of each architecture.
RUNTIMES = ("3.11", "3.12", "3.13")
PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
QLDB_MODELS = ("botocore-a-la-carte-qldb==1.34.144", "botocore-a-la-carte-qldb-session==1.34.144")
_SKIP_SUFFIXES = (".pyc", ".so", ".c", ".h", ".pyd")


@dataclass(frozen=True)
class PackageReport:
    path: Path
    files: int
    bytes: int
    python_version: str
    architecture: str
    native: bool  # ledgerdr's C accelerators are in the zip


def dependencies() -> list[str]:
    """ledgerdr's runtime requirements (no extras), as pip takes them."""
    requirements = importlib.metadata.requires("ledgerdr") or []
    return [r.split(";")[0].strip() for r in requirements if "extra ==" not in r]


def build_zip(output: Path, *, python_version: str = "3.12", architecture: str = "x86_64",
              ledgerdr_wheel: Path | None = None, pip_args: tuple[str, ...] = ()) -> PackageReport:
    """Build the zip at `output`. Raises ConfigError for an unknown runtime or architecture, and when
    pip cannot find a Linux wheel of a dependency (naming pip's own message)."""
    if python_version not in RUNTIMES:
        raise ConfigError(f"--python {python_version}: Lambda runtimes are {', '.join(RUNTIMES)}")
    if architecture not in PLATFORMS:
        raise ConfigError(f"--arch {architecture}: use one of {', '.join(PLATFORMS)}")
    with tempfile.TemporaryDirectory(prefix="ledgerdr-package-") as scratch:
        site = Path(scratch) / "site"
        target = ["--target", str(site), "--platform", PLATFORMS[architecture], "--implementation", "cp",
                  "--python-version", python_version, "--only-binary=:all:", *pip_args]
        _pip(["install", "--quiet", *target, *dependencies()])
        # pip --target skips a top-level folder that exists (botocore/): the models go beside, then in
        models = Path(scratch) / "models"
        _pip(["install", "--quiet", "--no-deps", *target[:1], str(models), *target[2:], *QLDB_MODELS])
        shutil.copytree(models, site, dirs_exist_ok=True)
        if ledgerdr_wheel is not None:  # built in a Linux image for the runtime: pip tags it linux_<machine>
            _pip(["install", "--quiet", "--no-deps", *target, "--platform", _linux_tag(architecture),
                  str(ledgerdr_wheel)])
        else:
            _copy_pure_python(site / "ledgerdr")
        files, size = _zip(site, output)
        native = any(p.name.startswith(("_ionhash", "_iontext")) for p in (site / "ledgerdr").iterdir())
    return PackageReport(output, files, size, python_version, architecture, native)


def _linux_tag(architecture: str) -> str:
    """The platform tag `pip wheel` gives a wheel built on Linux (no manylinux repair): linux_x86_64 or
    linux_aarch64. Accepted for ledgerdr's own wheel, which the user built for the runtime."""
    return "linux_" + ("x86_64" if architecture == "x86_64" else "aarch64")


def _pip(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("WARNING"))[-2000:]
        raise ConfigError(f"pip {' '.join(args[:1])} failed: {tail}",
                          hint="every dependency needs a Linux wheel for the chosen runtime and architecture")


def _copy_pure_python(dest: Path) -> None:
    """ledgerdr's Python files from this installation (its compiled extensions left out)."""
    import ledgerdr

    root = Path(ledgerdr.__file__).parent
    for path in sorted(root.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.name.endswith(_SKIP_SUFFIXES):
            continue
        target = dest / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())


def _zip(site: Path, output: Path) -> tuple[int, int]:
    """Deterministic: sorted names and a fixed time, so the same inputs give the same zip (and CloudFormation
    sees no change to deploy)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    tmp = output.with_name(output.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(site.rglob("*")):
            if path.is_dir() or "__pycache__" in path.parts or re.search(r"\.pyc$", path.name):
                continue
            info = zipfile.ZipInfo(str(path.relative_to(site)), date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
            count += 1
    tmp.replace(output)
    return count, output.stat().st_size
