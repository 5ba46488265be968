"""The Python API surface of one TensorRT release, read from its pybind11 binding sources.

Every Python-visible name of the ``tensorrt`` module is declared in ``python/src/**/*.cpp`` of NVIDIA's TensorRT
repository: classes ``py::class_<…>(scope, "Name")``, enums ``py::enum_<…>(scope, "Name")``, their members in the
chained ``.def("x")``, ``.def_static``, ``.def_property[_readonly]``, ``.def_readwrite/readonly`` and ``.value("X")``
calls, module functions ``m.def("f")`` and attributes ``m.attr("a") = …``. :func:`read_surface` turns a release's
sources into a :class:`Surface`; nothing is cached (the sources live in ``../shared/tensorrt-api``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_MEMBER_CALLS = ("def", "def_static", "def_property", "def_property_readonly", "def_readwrite", "def_readonly",
                 "def_property_static", "def_property_readonly_static", "value")
_DECL = re.compile(r"py::(class_|enum_)\s*<")
_IDENT = re.compile(r"[A-Za-z_]\w*")


@dataclass
class Binding:
    """A bound class or enum: its members, its base classes (by Python name) and, for enums, the values in order as
    ``(python name, C++ enumerator)``."""

    name: str
    kind: str  # "class" | "enum"
    members: set[str] = field(default_factory=set)
    bases: list[str] = field(default_factory=list)
    values: list[tuple[str, str]] = field(default_factory=list)
    scope: str | None = None  # the enclosing class for nested bindings (trt.ILogger.Severity)
    export_values: bool = False


@dataclass
class Surface:
    """A release's whole Python surface: top-level bindings, nested bindings, module functions and attributes."""

    version: str
    bindings: dict[str, Binding] = field(default_factory=dict)  # top-level name -> binding
    nested: dict[tuple[str, str], Binding] = field(default_factory=dict)  # (scope, name) -> binding
    functions: set[str] = field(default_factory=set)
    attributes: dict[str, str] = field(default_factory=dict)  # module attribute -> its C++ value expression

    def members(self, name: str) -> set[str]:
        """Every member of a top-level class or enum, inherited ones and nested bindings included."""
        seen: set[str] = set()
        out: set[str] = set()
        stack = [name]
        while stack:
            n = stack.pop()
            if n in seen or n not in self.bindings:
                continue
            seen.add(n)
            b = self.bindings[n]
            out |= b.members
            out |= {v for v, _ in b.values}
            for (scope, nested_name), nb in self.nested.items():
                if scope == n:
                    out.add(nested_name)
                    if nb.export_values:
                        out |= {v for v, _ in nb.values}
            stack.extend(b.bases)
        return out

    def has(self, dotted: str) -> bool:
        """Whether ``"Class.member"``, ``"Class"``, or a module-level name exists in this release."""
        head, _, rest = dotted.partition(".")
        if not rest:
            return head in self.bindings or head in self.functions or head in self.attributes
        return head in self.bindings and rest in self.members(head)


# --------------------------------------------------------------------------------------------------------------------
# A small C++ scanner: comments removed, string literals kept whole, brackets matched.


def strip_comments(text: str) -> str:
    """C++ text without // and /* */ comments (string and character literals are left intact)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"' and i > 0 and text[i - 1] == "R":  # raw string R"delim( ... )delim"
            delim = text[i + 1:text.find("(", i)]
            close = text.find(")" + delim + '"', i)
            end = close + len(delim) + 2 if close >= 0 else n
            out.append(text[i:end])
            i = end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            out.append(" ")
            i = n if j < 0 else j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _skip_literal(text: str, i: int) -> int:
    """Index just past the string/char literal starting at ``i``."""
    q = text[i]
    j = i + 1
    while j < len(text) and text[j] != q:
        j += 2 if text[j] == "\\" else 1
    return j + 1


def match_bracket(text: str, i: int) -> int:
    """Index of the bracket closing the one at ``i`` (``(``, ``[``, ``{`` or ``<``); literals are skipped. Angle
    brackets count only angle brackets (template argument lists hold no comparisons in these files)."""
    pairs = {"(": ")", "[": "]", "{": "}", "<": ">"}
    opening = text[i]
    closing = pairs[opening]
    depth = 0
    j = i
    while j < len(text):
        c = text[j]
        if c in "\"'":
            j = _skip_literal(text, j)
            continue
        if opening == "<" and c in "({[":
            j = match_bracket(text, j) + 1
            continue
        if c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if depth == 0:
                return j
        j += 1
    raise ValueError(f"unbalanced {opening!r} at offset {i}")


def split_args(text: str) -> list[str]:
    """Top-level comma-separated arguments of a bracket's contents."""
    args: list[str] = []
    depth, start, j = 0, 0, 0
    while j < len(text):
        c = text[j]
        if c in "\"'":
            j = _skip_literal(text, j)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            args.append(text[start:j].strip())
            start = j + 1
        j += 1
    if text[start:].strip():
        args.append(text[start:].strip())
    return args


def _string(arg: str) -> str | None:
    m = re.fullmatch(r'\s*"((?:[^"\\]|\\.)*)"\s*', arg)
    return m.group(1) if m else None


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _chain(text: str, i: int) -> tuple[list[tuple[str, list[str]]], int]:
    """The ``.call(args)`` chain starting at ``i``: [(call name, args)], and the index after it."""
    calls = []
    while True:
        j = _skip_space(text, i)
        if j >= len(text) or text[j] != ".":
            return calls, i
        m = _IDENT.match(text, _skip_space(text, j + 1))
        if not m:
            return calls, i
        k = _skip_space(text, m.end())
        if k < len(text) and text[k] == "<":  # .def_static<...>(...) never occurs, but template calls might
            k = _skip_space(text, match_bracket(text, k) + 1)
        if k >= len(text) or text[k] != "(":
            return calls, i
        end = match_bracket(text, k)
        calls.append((m.group(0), split_args(text[k + 1:end])))
        i = end + 1


def _apply(binding: Binding, calls: list[tuple[str, list[str]]]) -> None:
    for call, args in calls:
        if call in _MEMBER_CALLS and args:
            name = _string(args[0])
            if name is None:
                continue
            if call == "value":
                binding.values.append((name, args[1] if len(args) > 1 else ""))
            else:
                binding.members.add(name)
        elif call == "export_values":
            binding.export_values = True


def parse_source(text: str, surface: Surface, cpp_names: dict[str, str] | None = None) -> None:
    """Add the bindings declared in one C++ source file to ``surface``; ``cpp_names`` collects C++ type -> Python
    name (for resolving base classes)."""
    text = strip_comments(text)
    variables: dict[str, Binding] = {}
    for m in _DECL.finditer(text):
        kind = "class" if m.group(1) == "class_" else "enum"
        lt = m.end() - 1
        gt = match_bracket(text, lt)
        template = split_args(text[lt + 1:gt])
        i = _skip_space(text, gt + 1)
        var = None
        vm = _IDENT.match(text, i)
        if vm:  # py::class_<…> name{m, "Name", …};
            var = vm.group(0)
            i = _skip_space(text, vm.end())
        if i >= len(text) or text[i] not in "({":
            continue  # a type mention, not a declaration
        end = match_bracket(text, i)
        args = split_args(text[i + 1:end])
        if len(args) < 2 or _string(args[1]) is None:
            continue
        scope_var, name = args[0], _string(args[1])
        scope = None if scope_var == "m" else (variables[scope_var].name if scope_var in variables else scope_var)
        binding = Binding(name, kind, scope=scope)
        if cpp_names is not None and template:
            cpp_names.setdefault(template[0].strip(), name)
        if kind == "class":
            # template arguments after the C++ type: bases (bound classes) and holders/trampolines (ignored later)
            binding.bases = [t.strip() for t in template[1:]]
        calls, _ = _chain(text, end + 1)
        _apply(binding, calls)
        if var:
            variables[var] = binding
        if scope is None:
            surface.bindings[name] = binding
        else:
            surface.nested[(scope, name)] = binding
    for var, binding in variables.items():  # later statements on a named binding: name.def(...)...
        for vm in re.finditer(rf"(?<![\w.]){re.escape(var)}(?=\s*\.)", text):
            calls, _ = _chain(text, vm.end())
            _apply(binding, calls)
    for fm in re.finditer(r"(?<![\w.])m(?=\s*\.\s*def\s*\()", text):
        calls, _ = _chain(text, fm.end())
        for _, args in calls[:1]:
            if args and _string(args[0]) is not None:
                surface.functions.add(_string(args[0]))
    for am in re.finditer(r'(?<![\w.])m\s*\.\s*attr\s*\(\s*"(\w+)"\s*\)\s*=\s*([^;]+);', text):
        surface.attributes[am.group(1)] = am.group(2).strip()


def _resolve_bases(surface: Surface, cpp_names: dict[str, str]) -> None:
    """Turn base-class template arguments (C++ types) into the Python names of bound classes; drop the rest
    (trampolines such as PyLogger, holders such as std::unique_ptr<…>)."""
    for b in surface.bindings.values():
        b.bases = [cpp_names[t] for t in b.bases if t in cpp_names and cpp_names[t] != b.name]


def read_surface(root: str | Path) -> Surface:
    """The surface of the release whose bindings are under ``root`` (``…/tensorrt-api/<version>``)."""
    root = Path(root)
    src = root / "python" / "src"
    if not src.is_dir():
        raise FileNotFoundError(f"no binding sources under {src}")
    surface = Surface(root.name)
    cpp_names: dict[str, str] = {}
    for path in sorted(src.rglob("*.cpp")):
        parse_source(path.read_text(errors="replace"), surface, cpp_names)
    _resolve_bases(surface, cpp_names)
    return surface


def versions(api_root: str | Path) -> list[str]:
    """The release folders under ``api_root`` that hold binding sources."""
    root = Path(api_root)
    return sorted((p.name for p in root.iterdir() if (p / "python" / "src").is_dir()),
                  key=lambda v: tuple(int(x) for x in re.findall(r"\d+", v)))
