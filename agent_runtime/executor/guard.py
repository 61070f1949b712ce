"""Checking and rewriting model-written code before it runs.

The check refuses what must never run (dunder names, private attributes, forbidden built-ins,
relative or star imports). The rewrite routes attribute reads and imports through the runtime's
guards, counts operations in every loop, comprehension and function, drops `await` (tools are
called plainly), and keeps the value of a final expression as the action's output.
"""

from __future__ import annotations

import ast
from typing import cast

from ..errors import InterpreterError

FORBIDDEN_BUILTINS = frozenset(
    {"eval", "exec", "compile", "open", "__import__", "globals", "locals", "breakpoint", "input", "vars", "memoryview",
     "help", "exit", "quit", "delattr"}
)  # fmt: skip
# Attributes that lead from an ordinary object to frames, code or globals.
FORBIDDEN_ATTRIBUTES = frozenset(
    {"gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "ag_frame", "ag_code", "ag_await",
     "f_globals", "f_locals", "f_builtins", "f_back", "f_code", "tb_frame", "tb_next", "co_code", "co_consts",
     "func_globals", "func_code", "mro", "format_field", "get_field"}
)  # fmt: skip
ALLOWED_DUNDERS = frozenset({"__init__", "__name__", "__doc__"})

OUTPUT = "__rt_output__"
TICK = "__rt_tick__"
GETATTR = "__rt_getattr__"
IMPORT = "__rt_import__"
IMPORT_FROM = "__rt_import_from__"
ATTRIBUTES = "__rt_attrs__"
POW = "__rt_pow__"
MUL = "__rt_mul__"
LSHIFT = "__rt_lshift__"


def attribute_allowed(name: str) -> bool:
    if name in ALLOWED_DUNDERS:
        return True
    return not name.startswith("_") and name not in FORBIDDEN_ATTRIBUTES


def prepare(code: str) -> ast.Module:
    """Parse, check and rewrite `code`; raises `InterpreterError` with the line of the first problem."""
    try:
        tree = ast.parse(code, filename="<code>")
    except SyntaxError as error:
        line = f"\n    {error.text.rstrip()}" if error.text else ""
        raise InterpreterError(f"Syntax error at line {error.lineno}: {error.msg}{line}") from None
    _Checker().visit(tree)
    _Rewriter().visit(tree)  # rewrites in place: the module node itself is never replaced
    _keep_last_expression(tree)
    return ast.fix_missing_locations(tree)


def _refuse(node: ast.AST, message: str) -> InterpreterError:
    return InterpreterError(f"Forbidden at line {getattr(node, 'lineno', '?')}: {message}")


# Special methods model code may define on its own classes (they only hook into Python's protocols).
DEFINABLE_DUNDERS = frozenset(
    {"__init__", "__repr__", "__str__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__",
     "__len__", "__iter__", "__next__", "__contains__", "__getitem__", "__setitem__", "__call__", "__enter__",
     "__exit__", "__add__", "__sub__", "__mul__", "__bool__", "__post_init__"}
)  # fmt: skip
_BINDING_FIELDS = ("name", "asname", "arg", "rest")  # identifiers that bind names without an ast.Name


class _Checker(ast.NodeVisitor):
    """Refuses every identifier that could reach a private or runtime name, whatever node it sits in."""

    def generic_visit(self, node: ast.AST) -> None:
        for field in _BINDING_FIELDS:
            value = getattr(node, field, None)
            if isinstance(value, str) and value.startswith("__") and not self._definable(node, value):
                raise _refuse(node, f"the name {value!r} is not available")
        if isinstance(node, ast.Global | ast.Nonlocal):
            for name in node.names:
                if name.startswith("__"):
                    raise _refuse(node, f"the name {name!r} is not available")
        super().generic_visit(node)

    @staticmethod
    def _definable(node: ast.AST, name: str) -> bool:
        return isinstance(node, ast.FunctionDef) and name in DEFINABLE_DUNDERS

    def visit_Name(self, node: ast.Name) -> None:
        if node.id.startswith("__"):
            raise _refuse(node, f"the name {node.id!r} is not available")
        if node.id in FORBIDDEN_BUILTINS and isinstance(node.ctx, ast.Load):
            raise _refuse(node, f"{node.id}() is not allowed")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if not attribute_allowed(node.attr):
            raise _refuse(node, f"access to the attribute {node.attr!r} is not allowed")
        self.generic_visit(node)

    def visit_MatchClass(self, node: ast.MatchClass) -> None:
        for attribute in node.kwd_attrs:  # `case C(attr=x)` reads attributes without an ast.Attribute
            if not attribute_allowed(attribute):
                raise _refuse(node, f"access to the attribute {attribute!r} is not allowed")
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if any(part.startswith("_") for part in alias.name.split(".")):
                raise _refuse(node, f"importing {alias.name!r} is not allowed")
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            raise _refuse(node, "relative imports are not allowed")
        if any(part.startswith("_") for part in (node.module or "").split(".")):
            raise _refuse(node, f"importing from {node.module!r} is not allowed")
        if any(alias.name == "*" for alias in node.names):
            raise _refuse(node, f"'from {node.module} import *' is not allowed; import the names you need")
        for alias in node.names:
            if not attribute_allowed(alias.name):
                raise _refuse(node, f"importing {alias.name!r} is not allowed")
        self.generic_visit(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        raise _refuse(node, "'async def' is not needed: call tools directly, without await")

    def visit_AsyncFor(self, node: ast.AsyncFor) -> None:
        raise _refuse(node, "'async for' is not supported: use a plain for loop")

    def visit_AsyncWith(self, node: ast.AsyncWith) -> None:
        raise _refuse(node, "'async with' is not supported")


def _tick() -> ast.expr:
    return ast.Call(func=ast.Name(TICK, ast.Load()), args=[], keywords=[])


class _Rewriter(ast.NodeTransformer):
    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.ctx, ast.Load):
            getattr_call = ast.Call(ast.Name(GETATTR, ast.Load()), [node.value, ast.Constant(node.attr)], [])
            return ast.copy_location(getattr_call, node)
        # `obj.attr = v`, `obj.attr += v`, `del obj.attr`, in any target position, become
        # `__rt_attrs__(obj)["attr"]`: a subscript is valid wherever an attribute target is.
        attributes = ast.Call(ast.Name(ATTRIBUTES, ast.Load()), [node.value], [])
        return ast.copy_location(ast.Subscript(attributes, ast.Constant(node.attr), node.ctx), node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Pow | ast.Mult | ast.LShift):
            guard = {ast.Pow: POW, ast.Mult: MUL, ast.LShift: LSHIFT}[type(node.op)]
            return ast.copy_location(ast.Call(ast.Name(guard, ast.Load()), [node.left, node.right], []), node)
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.target, ast.Name) and isinstance(node.op, ast.Pow | ast.Mult | ast.LShift):
            # `x **= y` gets the same guard as `x = x ** y`.
            load = ast.Name(node.target.id, ast.Load())
            value = cast(ast.expr, self.visit_BinOp(ast.copy_location(ast.BinOp(load, node.op, node.value), node)))
            return ast.copy_location(ast.Assign([node.target], value), node)
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        self.generic_visit(node)
        if node.type is None:  # a bare except must not catch the guard's own signals
            node.type = ast.copy_location(ast.Name("Exception", ast.Load()), node)
        return node

    def visit_Await(self, node: ast.Await) -> ast.AST:
        value: ast.AST = self.visit(node.value)
        return value  # `await tool()` works too: tools already return their result

    def visit_Import(self, node: ast.Import) -> list[ast.stmt]:
        statements: list[ast.stmt] = []
        for alias in node.names:
            target = alias.asname or alias.name.split(".")[0]
            # `import a.b` binds `a`; `import a.b as c` binds the submodule.
            call = ast.Call(
                ast.Name(IMPORT, ast.Load()), [ast.Constant(alias.name), ast.Constant(bool(alias.asname))], []
            )
            statements.append(ast.copy_location(ast.Assign([ast.Name(target, ast.Store())], call), node))
        return statements

    def visit_ImportFrom(self, node: ast.ImportFrom) -> list[ast.stmt]:
        statements: list[ast.stmt] = []
        for alias in node.names:
            args: list[ast.expr] = [ast.Constant(node.module), ast.Constant(alias.name)]
            call = ast.Call(ast.Name(IMPORT_FROM, ast.Load()), args, [])
            target = ast.Name(alias.asname or alias.name, ast.Store())
            statements.append(ast.copy_location(ast.Assign([target], call), node))
        return statements

    def _count(self, node: ast.For | ast.While | ast.FunctionDef) -> ast.AST:
        self.generic_visit(node)
        node.body.insert(0, ast.copy_location(ast.Expr(_tick()), node))
        return node

    visit_For = visit_While = visit_FunctionDef = _count

    def visit_comprehension(self, node: ast.comprehension) -> ast.AST:
        self.generic_visit(node)
        node.ifs.append(_tick())  # the tick returns True, so it filters nothing
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        self.generic_visit(node)
        node.body = ast.BoolOp(ast.Or(), [ast.UnaryOp(ast.Not(), _tick()), node.body])  # `not True or body`
        return node


def _keep_last_expression(tree: ast.Module) -> None:
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body[-1]
        tree.body[-1] = ast.copy_location(ast.Assign([ast.Name(OUTPUT, ast.Store())], last.value), last)
