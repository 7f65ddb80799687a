"""What a function imports from: its code folder, its dependencies as ``sam build`` installs them, its layers.

On AWS a Python function's import path is ``/var/task`` (its deployment package: code and ``requirements.txt``
installed beside it by ``sam build``), then its layers as extracted under ``/opt``
(``/opt/python/lib/python3.X/site-packages``, then ``/opt/python``; a later layer's file replaces an earlier one's),
then the runtime's own packages. Locally:

* **the code folder** runs in place (edits apply to new environments), unless ``sam build`` output for the function
  (``.aws-sam/build/<LogicalId>`` beside the template) is newer than every file of the folder: then that folder is
  the task root, dependencies included, as ``sam deploy`` would ship it;
* **``requirements.txt``** (anything but blank lines and comments) is installed with the runtime's own pip into a
  folder cached under ``<cache>/builds/`` by a hash of the file, the runtime and the machine, built once and reused
  offline; it comes right after the code folder;
* **layers** come next: for each layer, newest first, its ``python/lib/python3.X/site-packages`` and then its
  ``python``, as on AWS where later layers overwrite earlier ones. A layer with ``BuildMethod: python3.X``
  (SAM ``Metadata``) is built as ``sam build`` builds it: its folder's files under ``python/``, its requirements
  installed there.

A package the function ships in none of these fails to import (``Runtime.ImportModuleError``), as after
``sam deploy``.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lambdalab import constants
from lambdalab.awslambda.runtime.interpreters import Interpreter
from lambdalab.awslambda.runtime.packages import file_lock

LOG = logging.getLogger(__name__)

_LAYOUT_VERSION = "1"
_INSTALL_TIMEOUT_S = 900.0
SAM_BUILD_DIR = Path(".aws-sam") / "build"


class BuildError(ValueError):
    """A function's or layer's dependencies could not be installed: names which and why (pip's own words)."""


@dataclass(frozen=True)
class CodeArtifact:
    """A function's import path in front of the runtime's packages; `task_root` is also LAMBDA_TASK_ROOT."""

    task_root: Path
    paths: tuple[Path, ...] = ()  # after the task root: dependencies, then layers
    note: str | None = None  # how the code was found, when it is worth saying (sam build output used)


def requirements_of(folder: Path) -> str | None:
    """The folder's requirements.txt when it asks for anything, else None."""
    path = folder / "requirements.txt"
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8", errors="replace")
    wanted = [line for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return text if wanted else None


def _newest_mtime(folder: Path) -> float:
    newest = folder.stat().st_mtime
    for path in folder.rglob("*"):
        if "__pycache__" in path.parts:
            continue
        try:
            newest = max(newest, path.stat().st_mtime)
        except OSError:
            continue
    return newest


def sam_build_output(code_dir: Path, logical_id: str | None, template_dir: Path | None) -> Path | None:
    """`.aws-sam/build/<LogicalId>` when it exists and is newer than every file of the code folder."""
    if not logical_id or template_dir is None:
        return None
    built = template_dir / SAM_BUILD_DIR / logical_id
    if not built.is_dir() or not any(built.iterdir()):
        return None
    return built if _newest_mtime(built) >= _newest_mtime(code_dir) else None


def install_requirements(
    requirements: str, interpreter: Interpreter, *, what: str, cache: Path | None = None, into: str = ""
) -> Path:
    """The folder `requirements` are installed in (built on first use, then reused). `into` is a subfolder of the
    build folder to install into (a layer's "python"); the returned folder is the build folder itself."""
    key = hashlib.sha256(
        "\0".join([_LAYOUT_VERSION, interpreter.minor, platform.machine(), into, requirements]).encode()
    ).hexdigest()[:16]
    root = (cache or constants.cache_dir()) / "builds" / f"python{interpreter.minor}-{key}"
    if (root / ".complete").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(root.parent / f"{root.name}.lock"):
        if (root / ".complete").is_file():
            return root
        LOG.warning("installing the requirements of %s for %s (once; cached in %s)", what, interpreter.runtime, root)
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
        try:
            requirements_file = staging / "requirements.txt"
            requirements_file.write_text(requirements, encoding="utf-8")
            target = staging / "out" / into if into else staging / "out"
            target.mkdir(parents=True)
            _pip(interpreter, requirements_file, target, what)
            (staging / "out" / ".complete").write_text("")
            if root.exists():
                shutil.rmtree(root)
            (staging / "out").rename(root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return root


def _pip(interpreter: Interpreter, requirements: Path, target: Path, what: str) -> None:
    command = [
        str(interpreter.executable),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-warn-script-location",
        "--target",
        str(target),
        "-r",
        str(requirements),
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BuildError(f"{what}: cannot run pip of {interpreter.executable}: {exc}") from None
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).strip().splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")] or lines[-2:]
        raise BuildError(f"{what}: pip could not install requirements.txt: {' / '.join(errors[-2:])}")


def build_layer(content_dir: Path, interpreter: Interpreter, build_method: str | None, *, what: str) -> Path:
    """The folder a layer is extracted to (/opt): as it is, or as ``sam build`` builds a ``python3.X`` layer."""
    if not build_method or not build_method.startswith("python"):
        return content_dir
    requirements = requirements_of(content_dir) or ""
    built = install_requirements(requirements, interpreter, what=what, into="python") if requirements else None
    key = hashlib.sha256(f"{content_dir}\0{_newest_mtime(content_dir)}".encode()).hexdigest()[:16]
    root = constants.cache_dir() / "builds" / f"layer-{key}"
    if not (root / ".complete").is_file():
        staging = Path(tempfile.mkdtemp(prefix=".layer-", dir=root.parent if root.parent.exists() else None))
        try:
            shutil.copytree(content_dir, staging / "python", dirs_exist_ok=True, ignore=_ignore_build_files)
            if built is not None:
                shutil.copytree(built / "python", staging / "python", dirs_exist_ok=True)
            (staging / ".complete").write_text("")
            root.parent.mkdir(parents=True, exist_ok=True)
            if root.exists():
                shutil.rmtree(root)
            shutil.move(str(staging), root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return root


def _ignore_build_files(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n in ("__pycache__", "requirements.txt", ".aws-sam")]


def layer_paths(opt_roots: Sequence[Path], interpreter: Interpreter) -> list[Path]:
    """The import path entries of layers extracted in this order (the last one wins, as on AWS)."""
    newest_first = list(reversed(opt_roots))
    site = [root / "python" / "lib" / f"python{interpreter.minor}" / "site-packages" for root in newest_first]
    plain = [root / "python" for root in newest_first]
    return [p for p in (*site, *plain) if p.is_dir()]


def function_artifact(
    code_dir: Path,
    interpreter: Interpreter,
    *,
    name: str,
    logical_id: str | None = None,
    template_dir: Path | None = None,
    layers: Iterable[Path] = (),
) -> CodeArtifact:
    """The function's import path: the task root, its dependencies, its layers' folders (see the module docstring)."""
    built = sam_build_output(code_dir, logical_id, template_dir)
    paths: list[Path] = []
    note = None
    if built is not None:
        task_root = built.resolve()
        note = f"{name}: runs the sam build output {built} (newer than {code_dir})"
    else:
        task_root = code_dir
        requirements = requirements_of(code_dir)
        if requirements is not None:
            paths.append(install_requirements(requirements, interpreter, what=f"function {name}"))
    paths.extend(layer_paths(list(layers), interpreter))
    return CodeArtifact(task_root=task_root, paths=tuple(paths), note=note)
