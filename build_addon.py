"""Build the Blender extension zip from ``blender_addon/`` with Blender's own extension tool, plus a legacy zip.

Blender validates and packs extensions with ``blender_ext.py`` (shipped inside Blender and inside the
``bpy`` wheel). Using it, rather than zipping by hand, means the zip we ship is one Blender accepts.
The legacy add-on installer wants the files one folder down (``<id>/__init__.py``), so the same files are also
written as ``<id>-<version>-legacy.zip``.

    python build_addon.py                      # validate + build both zips into dist/
    ./build_addon.sh                           # the same, making .venv-blender first when it is missing
    python build_addon.py --validate-only
    python build_addon.py --source DIR --output DIR

The tool is found in this interpreter's ``bpy`` package, else in the project's ``.venv-blender``
(made by ``scripts/env.sh``), else at ``--blender-ext PATH``.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MANIFEST = "blender_manifest.toml"


class BuildError(RuntimeError):
    """A build that cannot go on, with what to do about it."""


def _ext_tool_under(bpy_dir: Path) -> Path | None:
    found = sorted(bpy_dir.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    return found[-1] if found else None


def find_blender_ext(explicit: str | None = None) -> tuple[Path, str]:
    """Return (blender_ext.py, python to run it with)."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise BuildError(f"--blender-ext {path} does not exist; point it at Blender's blender_ext.py.")
        return path, sys.executable
    spec = importlib.util.find_spec("bpy")
    if spec is not None and spec.origin:
        tool = _ext_tool_under(Path(spec.origin).parent)
        if tool:
            return tool, sys.executable
    venv_python = ROOT / ".venv-blender" / "bin" / "python"
    for site in sorted((ROOT / ".venv-blender" / "lib").glob("python3*/site-packages/bpy")):
        tool = _ext_tool_under(site)
        if tool and venv_python.exists():
            return tool, str(venv_python)
    raise BuildError(
        "Blender's extension tool (blender_ext.py) was not found. Run ./build_addon.sh (it builds "
        ".venv-blender with bpy==5.0.1 first), install bpy==5.0.1 in this Python, or pass --blender-ext "
        "<Blender>/<version>/scripts/addons_core/bl_pkg/cli/blender_ext.py."
    )


def _run_tool(tool: Path, python: str, args: list[str]) -> str:
    proc = subprocess.run([python, str(tool), *args], capture_output=True, text=True, check=False)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise BuildError(f"Blender's extension tool refused the add-on ({' '.join(args[:1])}):\n{output}")
    return output


def build(source: Path, output: Path, *, validate_only: bool = False, blender_ext: str | None = None) -> Path | None:
    """Validate ``source`` and, unless ``validate_only``, write ``<id>-<version>.zip`` (returned) and
    ``<id>-<version>-legacy.zip`` into ``output``."""
    source = source.resolve()
    if not (source / MANIFEST).is_file():
        raise BuildError(
            f"{source / MANIFEST} is missing: an extension needs a manifest (id, version, name, tagline, "
            "maintainer, type, blender_version_min, license) at the top of its folder."
        )
    tool, python = find_blender_ext(blender_ext)
    _run_tool(tool, python, ["validate", str(source)])
    if validate_only:
        return None
    output.mkdir(parents=True, exist_ok=True)
    before = set(output.glob("*.zip"))
    _run_tool(tool, python, ["build", "--source-dir", str(source), "--output-dir", str(output)])
    made = sorted(set(output.glob("*.zip")) - before) or sorted(
        (p for p in output.glob("*.zip") if not p.stem.endswith("-legacy")), key=lambda p: p.stat().st_mtime
    )
    if not made:
        raise BuildError(f"The extension tool reported success but wrote no zip into {output}.")
    legacy_zip(made[-1], source)
    return made[-1]


def legacy_zip(extension_zip: Path, source: Path = ROOT / "blender_addon") -> Path:
    """The extension zip's files, unchanged, under one top folder named after the extension id: the layout
    Blender's legacy installer takes (it refuses a zip with ``__init__.py`` at its top)."""
    module = tomllib.loads((source / MANIFEST).read_text())["id"]
    target = extension_zip.with_name(extension_zip.stem + "-legacy.zip")
    with zipfile.ZipFile(extension_zip) as packed, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as legacy:
        for info in packed.infolist():
            legacy.writestr(f"{module}/{info.filename}", packed.read(info))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT / "blender_addon", help="extension folder")
    parser.add_argument("--output", type=Path, default=ROOT / "dist", help="where the zip is written")
    parser.add_argument("--validate-only", action="store_true", help="check the manifest and files, write nothing")
    parser.add_argument("--blender-ext", help="path to Blender's blender_ext.py")
    args = parser.parse_args(argv)
    try:
        zip_path = build(args.source, args.output, validate_only=args.validate_only, blender_ext=args.blender_ext)
    except BuildError as exc:
        print(f"build_addon: {exc}", file=sys.stderr)
        return 2
    if zip_path is None:
        print("valid")
    else:
        print(
            f"built {zip_path} (extension)\nbuilt {zip_path.with_name(zip_path.stem + '-legacy.zip')} (legacy add-on)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
