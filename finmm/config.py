"""One config: compose every package's section, load ray_config.yaml, apply dotted overrides.

Each package owns the schema of its own section (`actors.settings`, `model.settings`,
`cluster.settings`, `serve.settings`); this module only joins them and turns validation
failures into messages that name the file, the key path, what was expected, and the closest
valid key.
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from actors.settings import DataSection
from cluster.settings import ClusterSection, FinetuneSection, PretrainSection
from model.settings import ModelSection
from serve.settings import ServeSection

DEFAULT_CONFIG_PATH = Path("ray_config.yaml")


class FinMMSettings(BaseModel):
    """The whole of ray_config.yaml."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    cluster: ClusterSection = Field(default_factory=ClusterSection)
    """Where Ray runs and where jobs are submitted."""
    data: DataSection = Field(default_factory=DataSection)
    """Raw data root, preprocessing and its actor pools."""
    model: ModelSection = Field(default_factory=ModelSection)
    """Model size preset, initialisation and pretraining loss weights."""
    pretrain: PretrainSection = Field(default_factory=PretrainSection)
    """Ray Train + DeepSpeed settings for pretraining."""
    finetune: FinetuneSection = Field(default_factory=FinetuneSection)
    """Ray Train + DeepSpeed settings for task finetuning."""
    serve: ServeSection = Field(default_factory=ServeSection)
    """Ray Serve deployments and the HTTP API."""

    @model_validator(mode="after")
    def _tasks_are_known(self) -> FinMMSettings:
        """finetune.tasks, loss_weights and task_epochs name tasks of the registry (built-in or data.tasks): the
        sections meet here, where they are joined."""
        tasks = self.data.task_names()
        named = [("finetune.tasks", t) for t in self.finetune.tasks]
        named += [(f"finetune.loss_weights.{t}", t) for t in self.finetune.loss_weights]
        named += [(f"finetune.task_epochs.{t}", t) for t in self.finetune.task_epochs]
        for key, task in named:
            if task not in tasks:
                close = difflib.get_close_matches(task, tasks, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"{key}: unknown task {task!r}{hint} Tasks: {', '.join(tasks)} (declare your own "
                                 f"under data.tasks)")
        return self


class ConfigError(Exception):
    """A config file or override that does not validate. `str()` is the user-facing message."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        lines = [f"invalid config in {source}:"] + [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


def load_settings(path: Path | str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> FinMMSettings:
    """Read `path` (default ./ray_config.yaml if it exists, else built-in defaults), apply
    `key.path=value` overrides, and validate. Raises ConfigError with a readable message."""
    raw: dict = {}
    text = ""
    source = "built-in defaults"
    if path is None and DEFAULT_CONFIG_PATH.exists():
        path = DEFAULT_CONFIG_PATH
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(source, [f"cannot read the file: {exc.strerror or exc}"]) from None
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(source, [f"not valid YAML: {exc}"]) from None
        if not isinstance(raw, dict):
            raise ConfigError(source, ["the top level must be a mapping of sections"])
    for override in overrides:
        _apply_override(raw, override, source)
    _read_declaration_files(raw)
    try:
        return FinMMSettings.model_validate(raw)
    except ValidationError as exc:
        override_keys = {o.split("=", 1)[0].strip() for o in overrides}
        raise ConfigError(source, [_describe(err, text, override_keys) for err in exc.errors()]) from None


def _read_declaration_files(raw: dict) -> None:
    """`data.declared.<name>: some/file.yaml` -> that file's mapping, checked on its own so that an error names
    the file and its line. Relative paths are from the current directory, as every path in the config."""
    from actors.declaration import DatasetDeclaration

    declared = raw.get("data", {}).get("declared") if isinstance(raw.get("data"), dict) else None
    if not isinstance(declared, dict):
        return
    for name, value in declared.items():
        if not isinstance(value, str):
            continue
        path = Path(value)
        try:
            text = path.read_text(encoding="utf-8")
            block = yaml.safe_load(text)
        except OSError as exc:
            raise ConfigError(f"data.declared.{name}", [f"cannot read the declaration file {path} "
                                                        f"(-> {path.absolute()}): {exc.strerror or exc}"]) from None
        except yaml.YAMLError as exc:
            raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from None
        if not isinstance(block, dict):
            raise ConfigError(str(path), [f"the file must hold one data set declaration (a mapping), "
                                          f"found {type(block).__name__}"])
        try:
            DatasetDeclaration.model_validate(block)
        except ValidationError as exc:
            problems = [_describe(e, text, set(), DatasetDeclaration) for e in exc.errors()]
            raise ConfigError(str(path), problems) from None
        declared[name] = block


def _apply_override(raw: dict, override: str, source: str) -> None:
    if "=" not in override:
        raise ConfigError(
            source, [f"override {override!r} must look like key.path=value, e.g. data.text.max_length=128"]
        )
    key, value_text = override.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(source, [f"override {override!r} has an empty key"])
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else None
    except yaml.YAMLError:
        value = value_text
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _describe(err: dict, text: str, override_keys: set[str], root: type[BaseModel] | None = None) -> str:
    root = root or FinMMSettings
    loc = tuple(err["loc"])
    if loc and loc[-1] == "[key]":  # a dict key (e.g. finetune.loss_weights.<task>) that is not allowed
        loc = loc[:-1]
    dotted = ".".join(str(p) for p in loc)
    if not loc:  # a check across sections names its key first in the message: say where that key was set
        msg = str(err["msg"]).removeprefix("Value error, ")
        key, sep, rest = msg.partition(": ")
        if not sep or " " in key:
            return msg
        if key in override_keys:
            return f"key '{key}' (from a command-line override): {rest}"
        line = _yaml_line(text, tuple(key.split(".")))
        return f"key '{key}'" + (f" (line {line})" if line is not None else "") + f": {rest}"
    where = f"key '{dotted}'"
    if dotted in override_keys:
        where += " (from a command-line override)"
    else:
        line = _yaml_line(text, loc)
        if line is not None:
            where += f" (line {line})"
    if err["type"] == "extra_forbidden":
        siblings = _field_names(root, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), siblings, n=1, cutoff=0.5)
        hint = f"; did you mean '{'.'.join(str(p) for p in (*loc[:-1], close[0]))}'?" if close else ""
        return f"{where}: unknown key{hint} Valid keys here: {', '.join(siblings)}."
    expected = _expected(root, loc)
    got = err.get("input")
    got_text = f" (got {got!r})" if not isinstance(got, dict) else ""
    return f"{where}: {err['msg']}{got_text}.{expected}"


def _yaml_line(text: str, loc: tuple) -> int | None:
    if not text:
        return None
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        for key_node, value_node in node.value:
            if key_node.value == str(part):
                line = key_node.start_mark.line + 1
                node = value_node
                break
        else:
            break
    return line


def _model_at(model_cls: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model at `loc`, stepping through dicts of models (`data.declared.<name>`) and tagged unions (the
    `kind` of a split rule, which pydantic puts in the error's location)."""
    annotation: object = model_cls
    for part in loc:
        model = _submodel(annotation)
        if model is not None and isinstance(part, str) and part in model.model_fields:
            annotation = model.model_fields[part].annotation
            continue
        args = typing.get_args(annotation)
        if typing.get_origin(annotation) is dict and len(args) == 2:
            annotation = args[1]  # `part` is a key of the dict
            continue
        tagged = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel) and "kind" in a.model_fields
                  and part in typing.get_args(a.model_fields["kind"].annotation)]
        if not tagged:
            return None
        annotation = tagged[0]
    return _submodel(annotation)


def _submodel(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        for arg in typing.get_args(annotation):
            found = _submodel(arg)
            if found is not None:
                return found
    return None


def _field_names(model_cls: type[BaseModel], loc: tuple) -> list[str]:
    found = _model_at(model_cls, loc)
    return list(found.model_fields) if found is not None else []


def _expected(model_cls: type[BaseModel], loc: tuple) -> str:
    parent = _model_at(model_cls, loc[:-1])
    if parent is None or not isinstance(loc[-1], str) or loc[-1] not in parent.model_fields:
        return ""
    field = parent.model_fields[loc[-1]]
    annotation = getattr(field.annotation, "__name__", None) or str(field.annotation).replace("typing.", "")
    models = [a for a in typing.get_args(field.annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    if len(models) > 1:  # a tagged union (a split rule): name the members, not their module paths
        annotation = " | ".join(m.__name__ for m in models)
    doc = f" {field.description}" if field.description else ""
    return f" Expected {annotation}.{doc}"


def iter_fields(model_cls: type[BaseModel] = FinMMSettings, prefix: str = ""):
    """Yield (dotted key, annotation text, default, docstring) for every leaf field, in order."""
    for name, field in model_cls.model_fields.items():
        key = f"{prefix}{name}"
        sub = _submodel(field.annotation)
        if sub is not None:
            yield key, "section", None, field.description or ""
            yield from iter_fields(sub, key + ".")
        else:
            annotation = getattr(field.annotation, "__name__", None) or str(field.annotation).replace("typing.", "")
            yield key, annotation, field.get_default(call_default_factory=True), field.description or ""
