"""Noticing a script that would start worker processes from its unguarded top level.

Dask's local worker processes are started with ``spawn``: each one imports
the main script again.  A script that calls ``geoseg.predict`` at its top
level, without ``if __name__ == "__main__":``, would call it again in every
worker while that worker starts, and Python refuses that with a long
traceback.  :func:`unguarded_main_script` tells when this is about to happen,
so the cluster chooser can run the workers as threads of this process instead.
"""

from __future__ import annotations

import ast
import functools
import os
import sys
import types

__all__ = ["unguarded_main_script"]


def unguarded_main_script() -> str | None:
    """The main script's path if its top-level code, outside a ``__main__`` guard, is what is running now
    and worker processes would import it again; else ``None`` (interactive sessions, ``python -m pkg``,
    guarded calls, the ``fork`` start method)."""
    main = sys.modules.get("__main__")
    if main is None or _start_method() == "fork":
        return None
    # What multiprocessing's spawn makes a child import again (multiprocessing.spawn.get_preparation_data).
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None)
    if name is not None:
        if name == "__main__" or name.endswith(".__main__"):
            return None  # a package's __main__ is not run again
        path = getattr(spec, "origin", None)
    else:
        path = getattr(main, "__file__", None)
    if not path or not os.path.isfile(path):
        return None  # an interactive session or a notebook: nothing to import again
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and not (frame.f_globals is main.__dict__ and frame.f_code.co_name == "<module>"):
        frame = frame.f_back
    if frame is None:
        return None  # not called from the script's top level
    return None if _guarded(os.path.abspath(path), os.path.getmtime(path), frame.f_lineno) else str(path)


def _start_method() -> str:
    try:
        import dask

        return str(dask.config.get("distributed.worker.multiprocessing-method", "spawn"))
    except ImportError:
        return "spawn"


@functools.lru_cache(maxsize=8)
def _guarded(path: str, mtime: float, line: int) -> bool:
    """Whether ``line`` of the script lies inside a top-level ``if __name__ == "__main__":`` block."""
    try:
        with open(path, "rb") as fh:
            tree = ast.parse(fh.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return True  # cannot tell: assume the script knows what it does
    for node in tree.body:
        if isinstance(node, ast.If) and _is_main_test(node.test):
            end = node.end_lineno or node.lineno
            if node.lineno <= line <= end:
                return True
    return False


def _is_main_test(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    values = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(values) == 1
