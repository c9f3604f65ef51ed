"""The PHP caller: a `Client` class with one typed method pair per contract, the models as final
classes with readonly properties, plus the runtime, an autoloader and a composer.json.

PHP conventions: `declare(strict_types=1)`, typed parameters (named arguments and defaults are
PHP's own), exceptions for errors. Arrays are checked item by item before publishing, since PHP's
`array` type says nothing of what it holds.
"""

from __future__ import annotations

import json
from typing import Any

from ._checks import comparisons, enum_values, one_of_rule
from ._common import Options, doc_block, header_line, runtime_file
from ._model import Catalog, Contract, Field, Model, Type, lower_camel

NAMESPACE = "Tasks"


def render(catalog: Catalog, options: Options) -> dict[str, str]:
    del options  # PHP has nothing to choose yet
    header = "// " + header_line(catalog) + "\n"
    runtime = runtime_file("php", "Runtime.php").replace("<?php\n", "<?php\n\n" + header, 1)
    writer = _Writer()
    php_header = f"<?php\n\n{header}\ndeclare(strict_types=1);\n\nnamespace {NAMESPACE};\n\n"
    models = "\n".join(writer.model(model) for model in catalog.models.values())
    methods = "\n".join(writer.contract(item) for item in catalog.contracts)
    client = (
        "/** Calls the contracts of the catalog; every method publishes, then waits at most the contract's bound. */\n"
        f"final class Client extends Caller\n{{\n{methods}}}\n"
    )
    autoload = f"<?php\n\n{header}\ndeclare(strict_types=1);\n\n" + "".join(
        f"require_once __DIR__ . '/{name}';\n" for name in ("Runtime.php", "Models.php", "Client.php")
    )
    composer = {
        "description": header_line(catalog),
        "name": "generated/tasks",
        "type": "library",
        "require": {"php": ">=8.2", "ext-redis": "*", "ext-json": "*"},
        "autoload": {"classmap": ["Runtime.php", "Models.php", "Client.php"]},
    }
    return {
        "Runtime.php": runtime,
        "Models.php": php_header + models,
        "Client.php": php_header + client,
        "autoload.php": autoload,
        "composer.json": json.dumps(composer, indent=4) + "\n",
    }


def php_type(kind: Type) -> str:
    if kind.kind == "optional":
        inner = php_type(kind.inner)
        return inner if inner == "mixed" else "?" + inner
    if kind.kind in ("list", "dict"):
        return "array"
    if kind.kind == "model":
        return str(kind.model)
    return {"int": "int", "float": "float", "str": "string", "bool": "bool", "any": "mixed"}[kind.kind]


def doc_type(kind: Type) -> str:
    """The type as PHPDoc (and PHPStan, Psalm) write it: `list<int>`, `array<string, bool>`."""
    if kind.kind == "list":
        return f"list<{doc_type(kind.inner)}>"
    if kind.kind == "dict":
        return f"array<string, {doc_type(kind.inner)}>"
    if kind.kind == "optional":
        return doc_type(kind.inner) + "|null"
    return php_type(kind)


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(item) for item in value) + "]"
    if isinstance(value, dict):
        return "[" + ", ".join(f"{_string(str(key))} => {_literal(item)}" for key, item in value.items()) + "]"
    raise TypeError(value)


def _string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _param(field: Field) -> str:
    text = f"{php_type(field.type)} ${field.name}"
    if not field.required:
        text += " = " + (_literal(field.default) if field.has_default else "null")
    return text


def _needs_doc(kind: Type) -> bool:
    return kind.kind in ("list", "dict") or (kind.kind == "optional" and _needs_doc(kind.inner))


class _Writer:
    def __init__(self) -> None:
        self.depth = 0

    def model(self, model: Model) -> str:
        ordered = sorted(model.fields, key=lambda field: not field.required)  # PHP: required parameters first
        params = "".join(
            (f"        /** @var {doc_type(field.type)} */\n" if _needs_doc(field.type) else "")
            + f"        public readonly {_param(field)},\n"
            for field in ordered
        )
        decoded = "".join(f"            {field.name}: {self._decoded(field)},\n" for field in model.fields)
        encoded = "".join(
            f"            {_string(field.name)} => {self.encode(field.type, '$this->' + field.name)},\n"
            for field in model.fields
        )
        checks = "".join(
            self.checks(field.type, "$this->" + field.name, f"$path . '.{field.name}'", "        ")
            for field in model.fields
        )
        return (
            doc_block([model.description or model.name], "")
            + f"final class {model.name}\n{{\n"
            + f"    public function __construct(\n{params}    ) {{\n    }}\n\n"
            + "    /** @param array<mixed> $data the JSON object */\n"
            + "    public static function fromArray(array $data): self\n    {\n"
            + f"        return new self(\n{decoded}        );\n    }}\n\n"
            + "    /** @return array<string, mixed> */\n"
            + f"    public function toArray(): array\n    {{\n        return [\n{encoded}        ];\n    }}\n\n"
            + "    /** @param list<string> $problems */\n"
            + f"    public function check(string $path, array &$problems): void\n    {{\n{checks}    }}\n"
            + "}\n"
        )

    def _decoded(self, field: Field) -> str:
        value = f"($data[{_string(field.name)}] ?? null)"
        decoded = self.decode(field.type, value)
        if field.required:
            return f"{decoded}"
        fallback = _literal(field.default) if field.has_default else "null"
        return f"array_key_exists({_string(field.name)}, $data) ? {decoded} : {fallback}"

    def decode(self, kind: Type, value: str) -> str:
        """A PHP expression turning the JSON value `value` into `kind` (UnexpectedValueException if it does not fit)."""
        if kind.kind in ("int", "float", "bool"):
            return f"Decode::{kind.kind}({value})"
        if kind.kind == "str":
            return f"Decode::string({value})"
        if kind.kind == "any":
            return value
        if kind.kind == "model":
            return f"{kind.model}::fromArray(Decode::array({value}))"
        self.depth += 1
        var = f"$v{self.depth}"
        inner = self.decode(kind.inner, var)
        self.depth -= 1
        if kind.kind == "optional":
            return f"(static fn (mixed {var}) => {var} === null ? null : {inner})({value})"
        items = f"Decode::array({value})"
        if kind.kind == "list":
            items = f"array_values({items})"
        return f"array_map(static fn (mixed {var}) => {inner}, {items})"

    def encode(self, kind: Type, value: str) -> str:
        """A PHP expression turning `value` into what json_encode writes as the JSON Schema expects."""
        if kind.kind in ("int", "float", "str", "bool", "any"):
            return value
        if kind.kind == "model":
            return f"{value}->toArray()"
        self.depth += 1
        var = f"$v{self.depth}"
        inner = self.encode(kind.inner, var)
        self.depth -= 1
        if kind.kind == "optional":
            return value if inner == var else f"(static fn (mixed {var}) => {var} === null ? null : {inner})({value})"
        mapped = value if inner == var else f"array_map(static fn (mixed {var}) => {inner}, {value})"
        return f"array_values({mapped})" if kind.kind == "list" else f"(object) {mapped}"

    def checks(self, kind: Type, value: str, path: str, indent: str) -> str:
        """PHP statements adding a line to $problems for each way `value` breaks `kind`."""
        out = ""
        add = f"{indent}    Check::add($problems, {path}, "
        constraints = dict(kind.constraints)
        if kind.kind == "float":
            out += f"{indent}if (!is_finite({value})) {{\n{add}'must be a finite number', {value});\n{indent}}}\n"
        for condition, rule in comparisons(kind.constraints, value, "Check::length({})", "count({})"):
            out += f"{indent}if ({condition}) {{\n{add}{_string(rule)}, {value});\n{indent}}}\n"
        if "pattern" in constraints:
            regex = _string("~" + str(constraints["pattern"]).replace("~", "\\~") + "~u")
            rule = _string("must match " + str(constraints["pattern"]))
            out += f"{indent}if (preg_match({regex}, {value}) !== 1) {{\n{add}{rule}, {value});\n{indent}}}\n"
        values = enum_values(kind.constraints)
        if values is not None:
            options = "[" + ", ".join(_literal(item) for item in values) + "]"
            rule = _string(one_of_rule(values))
            out += f"{indent}if (!in_array({value}, {options}, true)) {{\n{add}{rule}, {value});\n{indent}}}\n"
        if kind.kind == "model":
            out += f"{indent}{value}->check({path}, $problems);\n"
        elif kind.kind == "optional":
            inner = self.checks(kind.inner, value, path, indent + "    ")
            if inner:
                out += f"{indent}if ({value} !== null) {{\n{inner}{indent}}}\n"
        elif kind.kind in ("list", "dict"):
            if kind.kind == "list":
                out += f"{indent}if (!array_is_list({value})) {{\n{add}'must be a list', {value});\n{indent}}}\n"
            self.depth += 1
            key, item = f"$k{self.depth}", f"$item{self.depth}"
            item_path = f"{path} . '[' . {key} . ']'"
            inner = self._item_type_check(kind.inner, item, item_path, indent + "    ")
            inner += self.checks(kind.inner, item, item_path, indent + "    ")
            self.depth -= 1
            if inner:
                out += f"{indent}foreach ({value} as {key} => {item}) {{\n{inner}{indent}}}\n"
        return out

    def _item_type_check(self, kind: Type, value: str, path: str, indent: str) -> str:
        """PHP's array type says nothing of its items: check each one's type, then skip its other checks if wrong."""
        test = self._is(kind, value)
        if test is None:
            return ""
        return (
            f"{indent}if (!({test})) {{\n{indent}    Check::add($problems, {path}, "
            f"{_string('must be ' + doc_type(kind))}, {value});\n{indent}    continue;\n{indent}}}\n"
        )

    def _is(self, kind: Type, value: str) -> str | None:
        if kind.kind == "optional":
            inner = self._is(kind.inner, value)
            return None if inner is None else f"{value} === null || {inner}"
        return {
            "int": f"is_int({value})",
            "float": f"is_float({value}) || is_int({value})",
            "str": f"is_string({value})",
            "bool": f"is_bool({value})",
            "list": f"is_array({value})",
            "dict": f"is_array({value})",
            "model": f"{value} instanceof {kind.model}",
        }.get(kind.kind)

    def contract(self, item: Contract) -> str:
        name = lower_camel(item.name)
        submit = "submit" + name[:1].upper() + name[1:]
        result_type = php_type(item.result)
        params = ", ".join(_param(field) for field in item.parameters)
        arguments = ", ".join(f"${field.name}" for field in item.parameters)
        param_docs = [
            f"@param {doc_type(field.type)} ${field.name}" for field in item.parameters if _needs_doc(field.type)
        ]
        description = item.description.splitlines() if item.description else []
        bound = (
            f"{item.name} (queue {item.queue}); waits at most {item.timeout:g} s unless withTimeout() says otherwise."
        )
        doc = doc_block(
            [
                *description,
                *([""] if description else []),
                bound,
                *param_docs,
                *([f"@return {doc_type(item.result)}"] if _needs_doc(item.result) else []),
            ],
            "    ",
        )
        checks = "".join(
            self.checks(field.type, f"${field.name}", _string(field.name), "        ") for field in item.parameters
        )
        kwargs = "".join(
            f"{_string(field.name)} => {self.encode(field.type, '$' + field.name)}, " for field in item.parameters
        ).rstrip(", ")
        shape = _string(json.dumps(item.shape, separators=(",", ":")))
        contract = f"new Contract({_string(item.name)}, {_string(item.queue)}, {float(item.timeout)!r}, {shape})"
        decode = self.decode(item.result, "$value")
        submit_doc = doc_block([f"Publish a call of {item.name} and return its handle.", *param_docs], "    ")
        return (
            doc
            + f"    public function {name}({params}): {result_type}\n    {{\n"
            + f"        return $this->{submit}({arguments})->result();\n    }}\n\n"
            + submit_doc
            + f"    public function {submit}({params}): Handle\n    {{\n"
            + (
                "        $problems = [];\n"
                + checks
                + "        if ($problems !== []) {\n"
                + f"            throw new InvalidArguments({_string(item.name)}, $problems);\n        }}\n"
                if checks
                else ""
            )
            + f"        return $this->submit(\n            {contract},\n            [{kwargs}],\n"
            + f"            static fn (mixed $value): {result_type} => {decode},\n        );\n    }}\n"
        )
