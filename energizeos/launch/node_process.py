"""Entry point of one node process started by launch: ``python -m energizeos.launch.node_process TARGET ...``.

TARGET is a module with ``main(args)`` or a .py file defining one. A configuration error
(bad parameter, bad name) exits with EX_CONFIG (78) and one clear line, so launch can fail fast
instead of respawning a node that can never start.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from energizeos import runtime
from energizeos.runtime.names import InvalidNameError
from energizeos.runtime.parameters import ParameterError

EX_CONFIG = 78


def _load_main(target: str):
    if target.endswith(".py"):
        spec = importlib.util.spec_from_file_location(Path(target).stem, target)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    main = getattr(module, "main", None)
    if not callable(main):
        raise ParameterError(f"{target} has no main(args) function")
    return main


def run(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m energizeos.launch.node_process MODULE|FILE.py [--ros-args ...]", file=sys.stderr)
        return 2
    target, args = argv[0], argv
    try:
        main = _load_main(target)
        result = main(args)
    except (ParameterError, InvalidNameError) as exc:
        print(f"[FATAL] configuration error: {exc}", file=sys.stderr, flush=True)
        return EX_CONFIG
    except KeyboardInterrupt:
        return 0
    finally:
        runtime.shutdown()  # close the Zenoh session even when main() failed before spinning
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1:]))
