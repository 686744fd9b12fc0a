"""Check that an extra environment (``make venv-kaggle`` / ``make venv-oldest``) imports exactly what it pins.

    .venv-kaggle/bin/python -m tools.check_venv requirements-kaggle.txt

Run with the extra environment's interpreter. Every ``name==version`` line of the given requirements file must import
at that version *from the environment itself* (its own site-packages shadows the main .venv's, which the environment
reaches through a .pth file), and torch/torchvision must import at requirements.txt's pins (from the main .venv).
Exit status 1, with one line per mismatch, otherwise one line per package.
"""
from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

# distribution name -> module name, where they differ
MODULES = {"scikit-learn": "sklearn", "pillow": "PIL", "pyyaml": "yaml", "python-dateutil": "dateutil",
           "ipython": "IPython"}
# always checked, with requirements.txt's pins: the packages these environments borrow from the main .venv
BORROWED = ("torch", "torchvision")
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)")


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def _public(version: str) -> str:
    return version.split("+", 1)[0]  # torch reports 2.14.1+cu130 for the pin 2.14.1


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    own = pins(Path(argv[0]))
    main_pins = pins(Path(__file__).resolve().parents[1] / "requirements.txt")
    wanted = {**{name: main_pins[name] for name in BORROWED if name in main_pins}, **own}
    prefix = Path(sys.prefix).resolve()
    problems = []
    # .venv's compiled packages (torch) only load in the Python minor version they were installed for
    cfg = Path(__file__).resolve().parents[1] / ".venv" / "pyvenv.cfg"
    main_version = re.search(r"^version(?:_info)?\s*=\s*(\d+\.\d+)", cfg.read_text(), re.M) if cfg.is_file() else None
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if main_version and main_version.group(1) != here:
        problems.append(f"python: {here} here but .venv is {main_version.group(1)}: make the env with .venv's Python "
                        f"(make venv-NAME PYTHON=python{main_version.group(1)})")
    for name, version in wanted.items():
        module_name = MODULES.get(name, name.replace("-", "_"))
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - any import failure is the finding
            problems.append(f"{name}: import {module_name} failed: {type(exc).__name__}: {exc}")
            continue
        got = _public(getattr(module, "__version__", "?"))
        assert module.__file__ is not None  # a package installed from a wheel, not a namespace package
        where = Path(module.__file__).resolve()
        inside = prefix in where.parents
        if got != version:
            problems.append(f"{name}: {got} imported from {where}, pinned {version}")
        elif name in own and not inside:
            problems.append(f"{name}: {got} imported from {where}, outside {prefix} (not installed in the env)")
        else:
            print(f"ok  {name}=={got}  ({'env' if inside else 'main .venv'}: {where.parent})")
    for line in problems:
        print(f"MISMATCH  {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
