"""The Go caller: one file of typed methods on the runtime's `Client`, plus the runtime and a go.mod.

Go conventions: methods take a `context.Context` first and return `(value, error)`; the errors are
the runtime's types (`*InvalidArguments`, `*TaskFailed`, ...), matched with `errors.As`. Each
contract gets `Name(ctx, required params...)`, `NameWith(ctx, NameArgs{...})` for named and
optional parameters (optional ones are pointers, nil meaning the worker's default) and
`SubmitName(ctx, NameArgs{...})` for a handle.
"""

from __future__ import annotations

import json
import re

from ._checks import comparisons, enum_values, one_of_rule
from ._common import Options, header_line, runtime_file
from ._model import Catalog, Contract, Field, Model, Type, camel, lower_camel

_KEYWORDS = set(
    [
        "break",
        "case",
        "chan",
        "const",
        "continue",
        "default",
        "defer",
        "else",
        "fallthrough",
        "for",
        "func",
        "go",
        "goto",
        "if",
        "import",
        "interface",
        "map",
        "package",
        "range",
        "return",
        "select",
        "struct",
        "switch",
        "type",
        "var",
        "ctx",
        "args",
    ]
)


def render(catalog: Catalog, options: Options) -> dict[str, str]:
    package = re.sub(r"[^a-z0-9_]", "", options.go_module.rsplit("/", 1)[-1].lower()) or "tasks"
    header = "// " + header_line(catalog) + "\n\n"
    runtime = runtime_file("go", "runtime.go").replace("package tasks\n", f"package {package}\n", 1)
    return {
        "go.mod": header + _go_mod(options.go_module),
        "runtime.go": header + runtime,
        "contracts.go": header + _Writer(catalog, package).text(),
    }


def _go_mod(module: str) -> str:
    return (
        f"module {module}\n\ngo 1.19\n\nrequire (\n\tgithub.com/gomodule/redigo v1.8.3\n"
        "\tgithub.com/google/uuid v1.3.0\n)\n"
    )


def go_type(kind: Type) -> str:
    if kind.kind == "list":
        return "[]" + go_type(kind.inner)
    if kind.kind == "dict":
        return "map[string]" + go_type(kind.inner)
    if kind.kind == "optional":
        return "*" + go_type(kind.inner)
    if kind.kind == "model":
        return str(kind.model)
    return {"int": "int64", "float": "float64", "str": "string", "bool": "bool", "any": "any"}[kind.kind]


def _field_type(field: Field) -> str:
    text = go_type(field.type)
    return text if field.required or text.startswith("*") else "*" + text


def _comment(text: str, indent: str = "") -> list[str]:
    return [f"{indent}// {line}".rstrip() for line in text.splitlines()] if text else []


def _param_name(name: str) -> str:
    text = lower_camel(name)
    return text + "_" if text in _KEYWORDS else text


class _Writer:
    def __init__(self, catalog: Catalog, package: str) -> None:
        self.catalog = catalog
        self.package = package
        self.patterns: dict[str, str] = {}
        self.depth = 0

    def text(self) -> str:
        body: list[str] = []
        for model in self.catalog.models.values():
            body += self._model(model)
        for item in self.catalog.contracts:
            body += self._contract(item)
        imports = ['\t"context"', '\t"encoding/json"', *(['\t"regexp"'] if self.patterns else []), '\t"time"']
        head = [f"package {self.package}", "", "import (", *imports, ")", ""]
        head += [f"var {name} = regexp.MustCompile({json.dumps(pattern)})" for pattern, name in self.patterns.items()]
        return "\n".join(head + ([""] if self.patterns else []) + body)

    def _struct(self, fields: tuple[Field, ...]) -> list[str]:
        # Aligned in columns as gofmt writes them.
        rows = [
            (camel(field.name), _field_type(field), field.name if field.required else field.name + ",omitempty")
            for field in fields
        ]
        names = max((len(row[0]) for row in rows), default=0)
        types = max((len(row[1]) for row in rows), default=0)
        return [f"\t{name:<{names}} {kind:<{types}} `json:{json.dumps(tag)}`" for name, kind, tag in rows]

    def _model(self, model: Model) -> list[str]:
        lines = _comment(f"{model.name}: {model.description}" if model.description else model.name)
        lines += [f"type {model.name} struct {{", *self._struct(model.fields), "}", ""]
        required = [field.name for field in model.fields if field.required]
        if required:
            # encoding/json leaves a missing field at its zero value; the contract says it is required.
            names = ", ".join(json.dumps(name) for name in required)
            lines += [
                f"func (m *{model.name}) UnmarshalJSON(data []byte) error {{",
                f"\ttype plain {model.name}",
                f"\tif err := requireFields(data, {names}); err != nil {{",
                "\t\treturn err",
                "\t}",
                "\treturn json.Unmarshal(data, (*plain)(m))",
                "}",
                "",
            ]
        lines.append(f"func (m {model.name}) check(path string, problems *[]string) {{")
        for field in model.fields:
            lines += self._field_checks(field, "m", 'path+".' + field.name + '"')
        return [*lines, "}", ""]

    def _contract(self, item: Contract) -> list[str]:
        name = camel(item.name)
        var = lower_camel(item.name) + "Contract"
        args = name + "Args"
        result = go_type(item.result)
        shape = json.dumps(item.shape, separators=(",", ":"))
        timeout_ms = round(item.timeout * 1000)
        lines = [f"// {args} are the arguments of {item.name}; optional ones are nil for the worker's default."]
        lines += [f"type {args} struct {{", *self._struct(item.parameters), "}", ""]
        lines.append(f"func (a {args}) problems() []string {{")
        lines.append("\tproblems := &[]string{}")
        for field in item.parameters:
            lines += self._field_checks(field, "a", json.dumps(field.name))
        lines += ["\treturn *problems", "}", ""]
        lines.append(
            f'var {var} = &Contract{{Name: "{item.name}", Queue: {json.dumps(item.queue)}, '
            f"Timeout: {timeout_ms} * time.Millisecond, Shape: json.RawMessage(`{shape}`)}}"
        )
        lines.append("")
        required = [field for field in item.parameters if field.required]
        params = "".join(f", {_param_name(field.name)} {go_type(field.type)}" for field in required)
        values = ", ".join(f"{camel(field.name)}: {_param_name(field.name)}" for field in required)
        doc = _comment(item.description)
        lines += [
            f"// {name} calls {item.name} and waits at most its bound ({item.timeout:g} s; ctx's deadline if sooner).",
            *(["//", *doc] if doc else []),
        ]
        lines += [
            f"func (c *Client) {name}(ctx context.Context{params}) ({result}, error) {{",
            f"\treturn c.{name}With(ctx, {args}{{{values}}})",
            "}",
            "",
            f"// {name}With calls {item.name} with named arguments.",
            f"func (c *Client) {name}With(ctx context.Context, args {args}) ({result}, error) {{",
            f"\thandle, err := c.Submit{name}(ctx, args)",
            "\tif err != nil {",
            f"\t\tvar zero {result}",
            "\t\treturn zero, err",
            "\t}",
            "\treturn handle.Result(ctx, 0)",
            "}",
            "",
            f"// Submit{name} publishes a call of {item.name} and returns its handle.",
            f"func (c *Client) Submit{name}(ctx context.Context, args {args}) (*Handle[{result}], error) {{",
            f"\treturn submit[{result}](ctx, c, {var}, args)",
            "}",
            "",
        ]
        return lines

    def _field_checks(self, field: Field, owner: str, path: str) -> list[str]:
        value = f"{owner}.{camel(field.name)}"
        if not field.required and field.type.kind != "optional":
            lines = self._checks(field.type, "*" + value, path, "\t\t")
            return [f"\tif {value} != nil {{", *lines, "\t}"] if lines else []
        return self._checks(field.type, value, path, "\t")

    def _checks(self, kind: Type, value: str, path: str, indent: str) -> list[str]:
        lines: list[str] = []
        add = f"{indent}\taddProblem(problems, {path}, "
        if kind.kind in ("list", "dict"):
            noun = "a list" if kind.kind == "list" else "an object"
            lines += [f"{indent}if {value} == nil {{", f'{add}"must be {noun}, not nil", nil)', f"{indent}}}"]
        for condition, rule in comparisons(kind.constraints, value, "runeCount({})", "len({})"):
            lines += [f"{indent}if {condition} {{", f"{add}{json.dumps(rule)}, {value})", f"{indent}}}"]
        pattern = dict(kind.constraints).get("pattern")
        if pattern is not None:
            name = self.patterns.setdefault(pattern, f"pattern{len(self.patterns)}")
            lines += [
                f"{indent}if !{name}.MatchString({value}) {{",
                f"{add}{json.dumps('must match ' + pattern)}, {value})",
                f"{indent}}}",
            ]
        values = enum_values(kind.constraints)
        if values is not None:
            cases = ", ".join(json.dumps(item) for item in values)
            lines += [
                f"{indent}switch {value} {{",
                f"{indent}case {cases}:",
                f"{indent}default:",
                f"{add}{json.dumps(one_of_rule(values))}, {value})",
                f"{indent}}}",
            ]
        if kind.kind == "model":
            lines.append(f"{indent}{value}.check({path}, problems)")
        elif kind.kind == "optional" and kind.inner.checked:
            inner = self._checks(kind.inner, f"(*{value})", path, indent + "\t")
            lines += [f"{indent}if {value} != nil {{", *inner, f"{indent}}}"]
        elif kind.kind in ("list", "dict") and kind.inner.checked:
            self.depth += 1
            index, item = f"i{self.depth}", f"item{self.depth}"
            inner = self._checks(kind.inner, item, f"itemPath({path}, {index})", indent + "\t")
            self.depth -= 1
            lines += [f"{indent}for {index}, {item} := range {value} {{", *inner, f"{indent}}}"]
        return lines
