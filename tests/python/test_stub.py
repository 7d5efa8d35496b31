"""The type stub and the package's __all__ match the built module."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import fanta
from fanta import _fanta

STUB = Path(fanta.__file__).with_name("_fanta.pyi")


def stub_names() -> dict[str, set[str]]:
    """Map each top-level name of the stub to its member names (empty for non-classes)."""
    tree = ast.parse(STUB.read_text())
    names: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            members = {
                item.name
                for item in node.body
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
            }
            names[node.name] = members
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = set()
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = set()
    return names


def module_names() -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for name, value in vars(_fanta).items():
        if name.startswith("__") and name != "__version__":
            continue
        if inspect.isclass(value):
            names[name] = {member for member in vars(value) if not member.startswith("__") or member in ("__init__", "__enter__", "__exit__")}
            names[name] |= {"__init__"} if "__new__" in vars(value) else set()
        else:
            names[name] = set()
    return names


def test_stub_matches_native_module():
    stub = stub_names()
    built = module_names()
    assert set(stub) == set(built)
    for name, members in built.items():
        assert stub[name] == members, name


def test_all_names_exist_and_are_documented():
    for name in fanta.__all__:
        value = getattr(fanta, name)
        if name != "__version__":
            assert inspect.getdoc(value), f"{name} has no docstring"
    public = {name for name in vars(fanta) if not name.startswith("_")} - {"annotations", "atexit", "os"}
    assert public == set(fanta.__all__) - {"__version__"}


def test_public_methods_are_documented():
    for cls in (fanta.Pool, fanta.Server, fanta.AsyncPool):
        for name, member in vars(cls).items():
            if name.startswith("_"):
                continue
            assert inspect.getdoc(member), f"{cls.__name__}.{name} has no docstring"
