"""The TypeScript caller: a `Client` class with typed methods per contract returning `Promise<T>`,
the models and each contract's arguments as readonly interfaces, plus the runtime (ioredis), an
index, a package.json and a strict tsconfig.json.

Each contract gets `name(required..., optional?..., options?)`, `nameWith(args, options?)` for named
arguments and `submitName(args, options?)` for a handle. TypeScript's `number` says neither
"integer" nor "finite", so both are checked before publishing, with the schema's constraints.
"""

from __future__ import annotations

import json

from ._checks import comparisons, enum_values, one_of_rule
from ._common import Options, doc_block, header_line, runtime_file
from ._model import Catalog, Contract, Field, Model, Type, camel, lower_camel

_RESERVED = set(
    [
        "break",
        "case",
        "catch",
        "class",
        "const",
        "continue",
        "debugger",
        "default",
        "delete",
        "do",
        "else",
        "enum",
        "export",
        "extends",
        "false",
        "finally",
        "for",
        "function",
        "if",
        "import",
        "in",
        "instanceof",
        "new",
        "null",
        "return",
        "super",
        "switch",
        "this",
        "throw",
        "true",
        "try",
        "typeof",
        "var",
        "void",
        "while",
        "with",
        "yield",
        "let",
        "static",
        "implements",
        "interface",
        "package",
        "private",
        "protected",
        "public",
        "await",
        "args",
        "options",
        "problems",
    ]
)


def render(catalog: Catalog, options: Options) -> dict[str, str]:
    del options  # TypeScript has nothing to choose yet
    header = "// " + header_line(catalog) + "\n\n"
    writer = _Writer()
    models = "".join(writer.model(model) for model in catalog.models.values())
    contracts = [writer.contract(item) for item in catalog.contracts]
    client = (
        header
        + 'import { Caller, Handle, InvalidArguments, problem, type CallOptions, type Contract } from "./runtime";\n\n'
        + models
        + "".join(text for text, _ in contracts)
        + "/** Calls the catalog's contracts: each method publishes, then waits at most its contract's bound. */\n"
        + "export class Client extends Caller {\n"
        + "\n".join(methods for _, methods in contracts)
        + "}\n"
    )
    package = {
        "//": header_line(catalog),  # npm's place for a comment
        "name": "generated-tasks",
        "version": "0.0.0",
        "private": True,
        "main": "dist/index.js",
        "types": "dist/index.d.ts",
        "scripts": {"build": "tsc -p ."},
        "dependencies": {"ioredis": "^5.9.2"},
        "devDependencies": {"typescript": "^5.9.3", "@types/node": "^20.19.43"},
    }
    tsconfig = {
        "compilerOptions": {
            "target": "ES2022",
            "module": "commonjs",
            "strict": True,
            "declaration": True,
            "outDir": "dist",
            "skipLibCheck": True,
        },
        "include": ["*.ts"],
    }
    return {
        "runtime.ts": header + runtime_file("typescript", "runtime.ts"),
        "client.ts": client,
        "index.ts": header + 'export * from "./runtime";\nexport * from "./client";\n',
        "package.json": json.dumps(package, indent=2) + "\n",
        "tsconfig.json": header + json.dumps(tsconfig, indent=2) + "\n",
    }


def ts_type(kind: Type) -> str:
    if kind.kind == "list":
        inner = ts_type(kind.inner)
        return f"readonly ({inner})[]" if " " in inner else f"readonly {inner}[]"
    if kind.kind == "dict":
        return f"Readonly<Record<string, {ts_type(kind.inner)}>>"
    if kind.kind == "optional":
        return ts_type(kind.inner) + " | null"
    if kind.kind == "model":
        return str(kind.model)
    values = enum_values(kind.constraints)
    if values is not None:  # a literal is a union type in TypeScript, still checked for JavaScript callers
        return " | ".join(json.dumps(value) for value in values)
    return {"int": "number", "float": "number", "str": "string", "bool": "boolean", "any": "unknown"}[kind.kind]


def _name(name: str) -> str:
    return name + "_" if name in _RESERVED else name


def _property(name: str) -> str:
    return name if name.isidentifier() else json.dumps(name)


def _members(fields: tuple[Field, ...]) -> str:
    return "".join(
        f"  readonly {_property(field.name)}{'' if field.required else '?'}: {ts_type(field.type)};\n"
        for field in fields
    )


class _Writer:
    def __init__(self) -> None:
        self.depth = 0

    def model(self, model: Model) -> str:
        checks = "".join(
            self._field_checks(field, "value", "path + " + json.dumps("." + field.name), "  ") for field in model.fields
        )
        fields = "".join(f"\n    && {self._field_fits(field)}" for field in model.fields)
        return (
            doc_block([model.description or model.name], "")
            + f"export interface {model.name} {{\n{_members(model.fields)}}}\n\n"
            + f"function is{model.name}(value: unknown): boolean {{\n"
            + "  const fields = value as Record<string, unknown>;\n"
            + f'  return typeof value === "object" && value !== null && !Array.isArray(value){fields};\n}}\n\n'
            + f"function check{model.name}(value: {model.name}, path: string, problems: string[]): void {{\n"
            + checks
            + "}\n\n"
        )

    def _field_fits(self, field: Field) -> str:
        value = f"fields[{json.dumps(field.name)}]"
        fits = self.fits(field.type, value)
        if field.required:
            return f"{json.dumps(field.name)} in fields && {fits}"
        return f"({value} === undefined || {fits})"

    def fits(self, kind: Type, value: str) -> str:
        """An expression: whether the JSON `value` (of type unknown) is a `kind`, as a result must be."""
        if kind.kind == "int":
            return f"Number.isInteger({value})"
        if kind.kind == "float":
            return f'typeof {value} === "number"'
        if kind.kind == "str":
            return f'typeof {value} === "string"'
        if kind.kind == "bool":
            return f'typeof {value} === "boolean"'
        if kind.kind == "any":
            return "true"
        if kind.kind == "model":
            return f"is{kind.model}({value})"
        if kind.kind == "optional":
            return f"({value} === null || {self.fits(kind.inner, value)})"
        self.depth += 1
        var = f"v{self.depth}"
        inner = self.fits(kind.inner, var)
        self.depth -= 1
        if kind.kind == "list":
            return f"(Array.isArray({value}) && ({value} as unknown[]).every(({var}: unknown) => {inner}))"
        return (
            f'(typeof {value} === "object" && {value} !== null && !Array.isArray({value}) '
            f"&& Object.values({value} as object).every(({var}: unknown) => {inner}))"
        )

    def _field_checks(self, field: Field, owner: str, path: str, indent: str) -> str:
        value = f"{owner}[{json.dumps(field.name)}]"
        inner = self.checks(field.type, value, path, indent + ("" if field.required else "  "))
        if field.required or not inner:
            return inner
        return f"{indent}if ({value} !== undefined) {{\n{inner}{indent}}}\n"

    def checks(self, kind: Type, value: str, path: str, indent: str) -> str:
        """Statements adding a line to `problems` for each way `value` breaks `kind`."""
        out = ""
        add = f"{indent}  problem(problems, {path}, "
        constraints = dict(kind.constraints)
        if kind.kind == "int":
            out += f"{indent}if (!Number.isInteger({value})) {{\n{add}'must be an integer', {value});\n{indent}}}\n"
        if kind.kind == "float":
            out += f"{indent}if (!Number.isFinite({value})) {{\n{add}'must be a finite number', {value});\n{indent}}}\n"
        for condition, rule in comparisons(kind.constraints, value, "[...{}].length", "{}.length"):
            out += f"{indent}if ({condition}) {{\n{add}{json.dumps(rule)}, {value});\n{indent}}}\n"
        if "pattern" in constraints:
            pattern = str(constraints["pattern"])
            rule = json.dumps("must match " + pattern)
            out += (
                f'{indent}if (!new RegExp({json.dumps(pattern)}, "u").test({value})) {{\n'
                f"{add}{rule}, {value});\n{indent}}}\n"
            )
        values = enum_values(kind.constraints)
        if values is not None:
            options = "[" + ", ".join(json.dumps(item) for item in values) + "]"
            out += (
                f"{indent}if (!({options} as unknown[]).includes({value})) {{\n"
                f"{add}{json.dumps(one_of_rule(values))}, {value});\n{indent}}}\n"
            )
        if kind.kind == "model":
            out += f"{indent}check{kind.model}({value}, {path}, problems);\n"
        elif kind.kind == "optional":
            inner = self.checks(kind.inner, value, path, indent + "  ")
            if inner:
                out += f"{indent}if ({value} !== null && {value} !== undefined) {{\n{inner}{indent}}}\n"
        elif kind.kind in ("list", "dict"):
            self.depth += 1
            key, item = f"k{self.depth}", f"item{self.depth}"
            inner = self.checks(kind.inner, item, f"`${{{path}}}[${{{key}}}]`", indent + "  ")
            self.depth -= 1
            if inner:
                source = f"{value}.entries()" if kind.kind == "list" else f"Object.entries({value})"
                out += f"{indent}for (const [{key}, {item}] of {source}) {{\n{inner}{indent}}}\n"
        return out

    def contract(self, item: Contract) -> tuple[str, str]:
        name = lower_camel(item.name)
        args = camel(item.name) + "Args"
        result = ts_type(item.result)
        const = f"{name}Contract"
        shape = json.dumps(item.shape, separators=(",", ":"))
        checks = "".join(self._field_checks(field, "args", json.dumps(field.name), "  ") for field in item.parameters)
        declarations = (
            f"/** The arguments of {item.name}. */\n"
            + f"export interface {args} {{\n{_members(item.parameters)}}}\n\n"
            + f"const {const}: Contract = {{ name: {json.dumps(item.name)}, queue: {json.dumps(item.queue)}, "
            + f"timeout: {json.dumps(item.timeout)}, shape: {shape},\n"
            + f"  fits: (value: unknown) => {self.fits(item.result, 'value')} }};\n\n"
            + f"function check{camel(item.name)}(args: {args}): void {{\n"
            + "  const problems: string[] = [];\n"
            + checks
            + "  if (problems.length > 0) {\n"
            + f"    throw new InvalidArguments({json.dumps(item.name)}, problems);\n  }}\n}}\n\n"
        )
        params = ", ".join(
            f"{_name(field.name)}{'' if field.required else '?'}: {ts_type(field.type)}" for field in item.parameters
        )
        values = ", ".join(f"{_property(field.name)}: {_name(field.name)}" for field in item.parameters)
        description = item.description.splitlines() if item.description else []
        bound = f"{item.name} (queue {item.queue}); waits at most {item.timeout:g} s unless `options.timeout` says so."
        upper = name[:1].upper() + name[1:]
        methods = (
            doc_block([*description, *([""] if description else []), bound], "  ")
            + f"  {name}({params}{', ' if params else ''}options?: CallOptions): Promise<{result}> {{\n"
            + f"    return this.{name}With({{ {values} }}, options);\n  }}\n\n"
            + f"  /** {item.name} with named arguments. */\n"
            + f"  async {name}With(args: {args}, options?: CallOptions): Promise<{result}> {{\n"
            + f"    return (await this.submit{upper}(args, options)).result();\n  }}\n\n"
            + f"  /** Publish a call of {item.name} and return its handle. */\n"
            + f"  async submit{upper}(args: {args}, options?: CallOptions): Promise<Handle<{result}>> {{\n"
            + f"    check{camel(item.name)}(args);\n"
            + f"    return this.submit<{result}>({const}, args, options);\n  }}\n"
        )
        return declarations, methods
