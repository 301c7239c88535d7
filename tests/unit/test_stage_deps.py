"""dvc.yaml lists every module a stage runs, so a code change reruns the stages it can affect.

A module missing from a stage's `deps` is a silent wrong state: after a change there `dvc repro`
reports the stage up to date while its outputs came from the old code. The code a stage runs is
derived statically from its `cmd` (`powerops <subcommand>`): the CLI's module-level imports,
the imports in `main()` and in every cli function it calls, the imports in the subcommand's
handler, then every import of those modules, transitively (inside functions too: they run when
called). Only `if TYPE_CHECKING:` blocks are left out; they never run.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from powerops.ops.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
PACKAGE = "powerops"
CLI = f"{PACKAGE}.ops.cli"


def templated(text: str, values: dict[str, Any]) -> str:
    """dvc.yaml with each `${a.b}` replaced by params.yaml's value, as DVC interpolates it."""

    def value(match: re.Match[str]) -> str:
        found: Any = values
        for key in match.group(1).split("."):
            found = found[key]
        return str(found)

    return re.sub(r"\$\{(\w+(?:\.\w+)*)\}", value, text)


PARAMS_YAML: dict[str, Any] = yaml.safe_load((REPO / "params.yaml").read_text())
DVC_YAML: dict[str, Any] = yaml.safe_load(templated((REPO / "dvc.yaml").read_text(), PARAMS_YAML))
STAGES: dict[str, dict[str, Any]] = DVC_YAML["stages"]


# --- deriving the code a stage runs -----------------------------------------------------


def module_file(src: Path, name: str) -> Path | None:
    """The file that defines module `name` under `src`, or None if `name` is no module."""
    path = src.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    children = ast.iter_child_nodes(node)
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        children = iter(node.orelse)
    for child in children:
        yield from _import_nodes(child)


def _with_parents(name: str) -> set[str]:
    # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def _package_of(src: Path, module: str, level: int) -> str:
    # The package a relative import with `level` dots starts from.
    path = module_file(src, module)
    package = module if path and path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return package


def imported_modules(src: Path, nodes: list[ast.AST], module: str) -> set[str]:
    """The package's modules that `import` statements in `nodes` (inside `module`) load."""
    found: set[str] = set()
    for node in nodes:
        for stmt in _import_nodes(node):
            if isinstance(stmt, ast.Import):
                targets = [alias.name for alias in stmt.names]
            else:
                base = stmt.module or ""
                if stmt.level:
                    package = _package_of(src, module, stmt.level)
                    base = f"{package}.{base}" if base else package
                # `from a import b` loads a, and a.b too when b is a module rather than a name.
                targets = [base, *(f"{base}.{alias.name}" for alias in stmt.names)]
            for target in targets:
                if target.split(".")[0] == PACKAGE and module_file(src, target):
                    found |= {m for m in _with_parents(target) if module_file(src, m)}
    return found


def closure(src: Path, start: set[str], opaque: frozenset[str] = frozenset()) -> set[str]:
    """`start` and every package module they import, transitively; the imports of `opaque`
    modules are not followed."""
    seen: set[str] = set()
    todo = sorted(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(src, name)
        assert path is not None, name
        if name not in opaque:
            todo.extend(imported_modules(src, [ast.parse(path.read_text())], name) - seen)
    return seen


def _local_calls(node: ast.AST, local: set[str]) -> Iterator[str]:
    if isinstance(node, ast.ExceptHandler):
        # The type expression of an `except` clause is evaluated only once the command has
        # failed, and DVC records nothing from a failed stage (cli's `_domain_errors()`).
        children: list[ast.AST] = list(node.body)
    else:
        children = list(ast.iter_child_nodes(node))
        func = node.func if isinstance(node, ast.Call) else None
        if isinstance(func, ast.Name) and func.id in local:
            yield func.id
    for child in children:
        yield from _local_calls(child, local)


def cli_modules(src: Path, handler: str) -> set[str]:
    """The modules the CLI loads to run `handler`: cli's module-level imports, those in
    `main()` and in `handler`, and those in every cli function they call."""
    cli_path = module_file(src, CLI)
    assert cli_path is not None
    tree = ast.parse(cli_path.read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert handler in functions, f"{CLI} has no function `{handler}`"
    top_level: list[ast.AST] = [n for n in tree.body if not isinstance(n, ast.FunctionDef)]
    reached: set[str] = set()
    todo = ["main", handler]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(_local_calls(functions[name], set(functions)))
    nodes = top_level + [functions[name] for name in sorted(reached)]
    return _with_parents(CLI) | imported_modules(src, nodes, CLI)


def stage_files(stage: str) -> set[PurePosixPath]:
    """Every source file `dvc repro` runs for `stage`, relative to the repository."""
    cmd = STAGES[stage]["cmd"]
    argv = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
    assert argv[0] == PACKAGE, f"stage `{stage}`: cmd {cmd!r} does not call `{PACKAGE}`"
    try:
        handler = build_parser().parse_args(argv[1:]).handler.__name__
    except SystemExit:
        pytest.fail(f"stage `{stage}`: `{cmd}` is not a valid {PACKAGE} command")
    # cli is walked from main() and the handler only: its other commands do not run.
    modules = closure(SRC, cli_modules(SRC, handler), opaque=frozenset({CLI}))
    files = {module_file(SRC, name) for name in modules}
    return {PurePosixPath(path.relative_to(REPO).as_posix()) for path in files if path}


# --- what dvc.yaml says -----------------------------------------------------------------


def _paths(entries: list[Any]) -> list[str]:
    # An entry is a path, or a one-key mapping from a path to its options.
    return [(next(iter(e)) if isinstance(e, dict) else str(e)).rstrip("/") for e in entries]


def deps(stage: str) -> list[str]:
    return _paths(STAGES[stage].get("deps", []))


def covered(file: PurePosixPath, listed: list[str]) -> bool:
    return any(file == PurePosixPath(dep) or PurePosixPath(dep) in file.parents for dep in listed)


# --- tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_lists_every_module_it_runs(stage: str) -> None:
    listed = deps(stage)
    missing = sorted(str(f) for f in stage_files(stage) if not covered(f, listed))
    assert not missing, (
        f"stage `{stage}` runs {len(missing)} module(s) its deps in dvc.yaml do not cover, so "
        "`dvc repro` would call it up to date after a change there. Add to "
        f"stages.{stage}.deps:\n" + "".join(f"      - {path}\n" for path in missing)
    )


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_lists_no_module_it_does_not_run(stage: str) -> None:
    runs = stage_files(stage)
    extra = [
        dep
        for dep in deps(stage)
        if dep.startswith("src/") and dep.endswith(".py") and PurePosixPath(dep) not in runs
    ]
    assert not extra, (
        f"stage `{stage}` lists module(s) it never imports: {', '.join(extra)}. Remove them "
        f"from stages.{stage}.deps in dvc.yaml so a change there does not rerun the stage."
    )


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_exist(stage: str) -> None:
    written = [out for other in STAGES.values() for out in _paths(other.get("outs", []))]
    absent = [
        dep
        for dep in deps(stage)
        if not (REPO / dep).exists()
        and not (REPO / f"{dep}.dvc").exists()  # tracked by `dvc add`, maybe not pulled
        and not covered(PurePosixPath(dep), written)
    ]
    assert not absent, (
        f"stage `{stage}` depends on path(s) that do not exist and no stage writes: "
        f"{', '.join(absent)}. Fix or remove them in stages.{stage}.deps in dvc.yaml."
    )


def test_derivation_follows_lazy_and_transitive_imports_only(tmp_path: Path) -> None:
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "ops").mkdir()
    files = {
        "__init__.py": "",
        "ops/__init__.py": "",
        "ops/cli.py": (
            f"from {PACKAGE}.config import load\n"
            "def _errors():\n"
            f"    from {PACKAGE} import only_on_failure\n"
            "    return (ValueError,)\n"
            "def _setup():\n"
            f"    import {PACKAGE}.sub.lock\n"
            "def main():\n"
            "    _setup()\n"
            "    try:\n"
            "        pass\n"
            "    except _errors():\n"
            "        pass\n"
            "def cmd_a(params, args):\n"
            f"    from {PACKAGE} import a\n"
            "def cmd_b(params, args):\n"
            f"    from {PACKAGE} import b\n"
        ),
        "config.py": "load = 1\n",
        "a.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            f"    from {PACKAGE} import typing_only\n"
            "def run():\n"
            f"    from {PACKAGE}.helper import thing\n"
        ),
        "helper.py": "from .deep import x\n",
        "deep.py": "x = 1\n",
        "b.py": "",
        "only_on_failure.py": "",
        "typing_only.py": "",
        "sub/__init__.py": "",
        "sub/lock.py": "",
    }
    for name, text in files.items():
        (package / name).write_text(text)

    modules = closure(tmp_path, cli_modules(tmp_path, "cmd_a"), opaque=frozenset({CLI}))

    assert modules == {
        f"{PACKAGE}{suffix}"
        for suffix in (
            "",
            ".ops",
            ".ops.cli",
            ".config",
            ".sub",
            ".sub.lock",
            ".a",
            ".helper",
            ".deep",
        )
    }
