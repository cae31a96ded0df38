"""The lab's working copies: ``make lab`` opens JupyterLab on copies, never on the tracked notebooks.

``python -m labkit.commands.lab [ROOT]`` (what ``make lab`` runs before JupyterLab):

- copies each ``notebooks/*.ipynb`` into ``outputs/lab/`` once — an existing
  working copy is kept, so edits and outputs survive; a copy whose committed
  notebook has changed since it was taken is named, with how to refresh it
  (delete the copy). ``outputs/`` is git-ignored, so autosave, edited
  parameters and outputs never touch a tracked file; papermill and
  ``labkit report`` keep running the committed notebooks.
- writes ``outputs/lab-settings/overrides.json``, the defaults JupyterLab reads
  from its application settings folder (``--LabApp.app_settings_dir``): the
  news prompt and the update check off, so nothing asks to go online.

Not a ``labkit`` subcommand: it belongs to the repository's lab, not to the
installed package's command line. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

LAB_DIR = Path("outputs/lab")
SETTINGS_DIR = Path("outputs/lab-settings")
SOURCES = ".sources.json"

#: JupyterLab 4 asks "Would you like to get notified about official Jupyter news?"
#: whenever this setting is "none" (its default), whatever the server's news_url.
OVERRIDES: dict[str, dict[str, object]] = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_sources(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def prepare(root: str | Path = ".") -> tuple[Path, list[str]]:
    """Make the working copies and the settings; return the lab folder and notes to print."""
    root = Path(root).resolve()
    src_dir, lab = root / "notebooks", root / LAB_DIR
    lab.mkdir(parents=True, exist_ok=True)
    sources_path = lab / SOURCES
    sources = _read_sources(sources_path)
    notes: list[str] = []
    for nb in sorted(src_dir.glob("*.ipynb")):
        copy, digest = lab / nb.name, _sha256(nb)
        if not copy.exists():
            tmp = copy.with_name(copy.name + ".tmp")
            shutil.copyfile(nb, tmp)
            tmp.replace(copy)
            sources[nb.name] = digest
            notes.append(f"copied notebooks/{nb.name} -> {LAB_DIR / nb.name}")
        elif sources.get(nb.name) != digest:
            notes.append(f"notebooks/{nb.name} changed since {LAB_DIR / nb.name} was copied; "
                         f"delete the copy to get the new version")
    _write_json(sources_path, sources)
    _write_json(root / SETTINGS_DIR / "overrides.json", OVERRIDES)
    return lab, notes


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    lab, notes = prepare(args[0] if args else ".")
    for n in notes:
        print(n)
    print(f"lab working copies in {lab} (git-ignored); the committed notebooks stay as they are")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
