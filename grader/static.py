"""A static scan of the student's sources, in the trusted parent: flags code for a human to review.

The worker reports which aten ops a call ran, and it checks that nothing switched its op trace off
(see ``grader.runner``). Those checks live in the student's own interpreter, so code that
introspects frames, closures or the garbage collector, patches torch or the grader, uses ctypes,
or talks to file descriptors directly could still defeat them. None of that is needed to write
these exercises, and none of it can hide from this scan: it reads the source text in the parent,
where student code never runs. A flag never changes a score (names like ``ref.cross_entropy``
would make a scoring AST check misfire); it puts a ``review:`` line in the report's warnings.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from grader.submission import Submission, parse

MAX_FLAGS = 12

#: Modules whose import alone is worth a look: introspection, processes, threads, raw I/O.
MODULES = {
    "ctypes": "raw memory access",
    "gc": "reaches every object in the process",
    "inspect": "frame introspection",
    "threading": "threads (run outside the op trace)",
    "_thread": "threads (run outside the op trace)",
    "concurrent": "threads or processes (run outside the op trace)",
    "multiprocessing": "processes",
    "subprocess": "processes",
    "signal": "signal handlers",
    "socket": "sockets",
    "importlib": "dynamic imports",
    "builtins": "the builtins module",
    "marshal": "code objects from bytes",
    "pickle": "pickle",
    "types": "hand-made code or function objects",
    "atexit": "exit hooks",
    "grader": "the grader's own modules",
    "solutions": "the reference solutions",
    "torch.library": "torch's operator registry",
    "torch.overrides": "torch's override machinery",
    "torch.utils._python_dispatch": "torch's dispatch-mode internals",
}

#: Attributes that reach interpreter or grader internals, whatever object they are read from.
ATTRIBUTES = {
    "_getframe": "frame introspection",
    "f_back": "frame introspection",
    "f_locals": "frame introspection",
    "f_globals": "frame introspection",
    "tb_frame": "frame introspection",
    "gi_frame": "frame introspection",
    "cr_frame": "frame introspection",
    "__closure__": "closure introspection",
    "__globals__": "function globals",
    "__code__": "code objects",
    "__builtins__": "the builtins",
    "__subclasses__": "class introspection",
    "__torch_dispatch__": "a torch dispatch hook (its code runs outside the op trace)",
    "__torch_function__": "a torch function hook",
    "redispatch": "redispatching ops below the op trace",
    "redispatch_boxed": "redispatching ops below the op trace",
    "settrace": "a tracing hook",
    "setprofile": "a profiling hook",
    "addaudithook": "an audit hook",
    "modules": None,  # only sys.modules, see _attribute
}

#: os functions that start processes, send signals or do raw file-descriptor I/O.
OS_FUNCTIONS = {
    "fork", "forkpty", "system", "popen", "posix_spawn", "posix_spawnp", "kill", "killpg",
    "setsid", "setpgid", "dup", "dup2", "read", "write", "fdopen", "pipe", "_exit", "execv",
    "execve", "execvp", "execvpe", "execl", "execle", "execlp", "execlpe", "spawnv", "spawnve",
    "spawnl", "spawnle", "sendfile",
}  # fmt: skip

#: Calls that build or run code from strings, or reach namespaces by name.
CALLS = {
    "exec": "runs code built at run time",
    "eval": "runs code built at run time",
    "compile": "compiles code at run time",
    "__import__": "a dynamic import",
    "globals": "the module namespace as a dict",
    "vars": "a namespace as a dict",
    "setattr": "sets an attribute by name",
    "delattr": "deletes an attribute by name",
}


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for a chain of names and attributes, "" for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


class _Scanner:
    """What is worth a review, node by node (``visit_<Type>``), in the order ast.NodeVisitor goes."""

    def __init__(self) -> None:
        self.flags: list[tuple[int, str]] = []
        self.imported: dict[str, str] = {}  # local name -> module it was imported from

    def flag(self, node: ast.AST, what: str) -> None:
        self.flags.append((getattr(node, "lineno", 0), what))

    def _module(self, node: ast.AST, name: str) -> None:
        for prefix, why in MODULES.items():
            if name == prefix or name.startswith(prefix + "."):
                self.flag(node, f"imports {name}: {why}")
                return
        if name.startswith("torch.") and any(p.startswith("_") for p in name.split(".")[1:]):
            self.flag(node, f"imports {name}: torch internals")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._module(node, alias.name)
            self.imported[alias.asname or alias.name.split(".")[0]] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        self._module(node, module)
        for alias in node.names:
            full = f"{module}.{alias.name}" if module else alias.name
            if module == "torch" and alias.name.startswith("_"):
                self.flag(node, f"imports {full}: torch internals")
            elif module == "os" and alias.name in OS_FUNCTIONS:
                self.flag(node, f"imports os.{alias.name}: processes, signals or raw file descriptors")
            elif module == "sys" and alias.name in ("_getframe", "modules", "settrace", "setprofile"):
                self.flag(node, f"imports sys.{alias.name}: interpreter internals")
            self.imported[alias.asname or alias.name] = full

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = _dotted(node)
        root = name.split(".")[0] if name else ""
        origin = self.imported.get(root, root)
        full = origin + name[len(root) :] if name else ""
        if node.attr in ATTRIBUTES and ATTRIBUTES[node.attr] is not None:
            self.flag(node, f"uses .{node.attr}: {ATTRIBUTES[node.attr]}")
        elif full == "sys.modules":
            self.flag(node, "uses sys.modules: the loaded modules, the grader's included")
        elif full.startswith("os.") and full.count(".") == 1 and node.attr in OS_FUNCTIONS:
            self.flag(node, f"uses {full}: processes, signals or raw file descriptors")
        elif full.startswith("torch.") and node.attr.startswith("_") and not node.attr.startswith("__"):
            self.flag(node, f"uses {full}: torch internals")
        elif full.startswith("torch.ops."):
            self.flag(node, f"uses {full}: torch's operator objects")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in CALLS:
            self.flag(node, f"calls {func.id}(): {CALLS[func.id]}")
        elif (
            isinstance(func, ast.Name)
            and func.id == "getattr"
            and len(node.args) >= 2
            and not isinstance(node.args[1], ast.Constant)
        ):
            self.flag(node, "calls getattr() with a computed name")

    def _store(self, target: ast.AST) -> None:
        if isinstance(target, (ast.Attribute, ast.Subscript)):
            name = _dotted(target.value if isinstance(target, ast.Subscript) else target)
            root = name.split(".")[0] if name else ""
            if root in self.imported or root in ("__builtins__", "builtins"):
                self.flag(target, f"assigns to {name or root}: changes a module it imported")
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._store(element)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._store(target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._store(node.target)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._store(target)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for base in node.bases:
            name = _dotted(base)
            root = name.split(".")[0] if name else ""
            full = self.imported.get(root, root) + name[len(root) :]
            if full.endswith(("Tensor", "TorchDispatchMode", "TorchFunctionMode")) and (
                full.startswith("torch") or name in ("Tensor", "TorchDispatchMode", "TorchFunctionMode")
            ):
                self.flag(node, f"subclasses {name}: its hooks can run outside the op trace")


_HANDLED = (
    ast.Import,
    ast.ImportFrom,
    ast.Attribute,
    ast.Call,
    ast.Assign,
    ast.AugAssign,
    ast.Delete,
    ast.ClassDef,
)
#: Leaves that hold nothing worth a look (load/store contexts, operators, import aliases).
_LEAVES = (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop, ast.alias)


def _walk(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node under ``tree``, itself first, in ast.NodeVisitor's order (depth first, fields in
    order) but without its per-node method lookups: a submission has about a thousand nodes."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        children: list[ast.AST] = []
        for name in node._fields:
            value = getattr(node, name, None)
            if isinstance(value, list):
                children.extend(v for v in value if isinstance(v, ast.AST) and not isinstance(v, _LEAVES))
            elif isinstance(value, ast.AST) and not isinstance(value, _LEAVES):
                children.append(value)
        children.reverse()
        stack.extend(children)


def scan(text: str) -> list[tuple[int, str]]:
    """(line, what) for every construct worth a review in one source text, in line order."""
    tree = parse(text)
    if not isinstance(tree, ast.Module):
        return []
    scanner = _Scanner()
    handlers: dict[type[ast.AST], Callable[[Any], None]] = {
        cls: getattr(scanner, f"visit_{cls.__name__}") for cls in _HANDLED
    }
    for node in _walk(tree):
        handler = handlers.get(type(node))
        if handler is not None:
            handler(node)
    first: dict[int, str] = {}
    for line, what in scanner.flags:  # visit order: the outermost expression of a line first
        first.setdefault(line, what)
    return sorted(first.items())


def review(submission: Submission) -> tuple[str, ...]:
    """``review:`` lines for the report's warnings (empty for ordinary code)."""
    lines: list[str] = []
    for source in submission.all_sources():
        for unit in source.units:
            lines.extend(f"review: {unit.name}, line {line}: {what}" for line, what in scan(unit.text))
    if len(lines) > MAX_FLAGS:
        lines = [*lines[:MAX_FLAGS], f"review: and {len(lines) - MAX_FLAGS} more"]
    return tuple(lines)


def flagged(texts: Iterable[str]) -> bool:
    """Whether any of these sources would be flagged."""
    return any(scan(t) for t in texts)
