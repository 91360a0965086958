"""Reading and writing a mandate: YAML close to 1.2 or JSON in, `Mandate` out, pydantic's
errors translated to `location: problem` lines that name list items from the input; the
canonical dump and the diff between two versions.
"""

import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ValidationError,
)
from pydantic_core import ErrorDetails

from permanence.mandates.base import _CODE, LegalBasis, MandateKind
from permanence.mandates.errors import MandateInvalid
from permanence.mandates.mandate import Mandate
from permanence.mandates.purposes import _FIELD_ITEM_TAGS, ConsentWording, Field, Purpose, Retention
from permanence.mandates.rules import Outline, catalogue_problems
from permanence.mandates.sections import (
    _RECIPIENT_KINDS,
    Controller,
    Dpo,
    EmailNotificationRecipient,
    Hosting,
    Notice,
    OnCall,
    OnCallContact,
    PortalRecipient,
    Recording,
    RecordingPeriod,
    Transfer,
    WebhookRecipient,
)

if TYPE_CHECKING:
    import yaml


@cache
def _loader() -> "type[yaml.SafeLoader]":
    """The YAML loader, made when a first mandate is read (PyYAML is not imported at the
    service's start)."""
    import yaml

    class _Loader(yaml.SafeLoader):
        """YAML close to 1.2: `18:00` stays text (not 1080), `NO`/`on` stay text, keys are
        unique."""

        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    _Loader.yaml_implicit_resolvers = {
        first: [
            (tag, rx)
            for tag, rx in resolvers
            if tag
            not in {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool"}
        ]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool",
        re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list("tTfF"),
    )
    _Loader.add_implicit_resolver(
        "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
    )
    _Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
        list("-+0123456789."),
    )
    return _Loader


def _load(source: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        return source
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MandateInvalid([f"the document is not UTF-8 text (byte {exc.start})"]) from None
    import yaml

    try:
        if source.lstrip().startswith("{"):
            data = json.loads(source)
        else:
            data = yaml.load(source, Loader=_loader())  # noqa: S506 - a SafeLoader
    except json.JSONDecodeError as exc:
        raise MandateInvalid(
            [f"JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}"]
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise MandateInvalid([f"YAML syntax error{where}: {reason}"]) from None
    if not isinstance(data, Mapping):
        raise MandateInvalid(["the document must be a mapping (key: value) at the top level"])
    return data


_MODELS: tuple[type[BaseModel], ...] = (
    Mandate, Controller, Dpo, Notice, Field, Purpose, Retention, ConsentWording, PortalRecipient,
    EmailNotificationRecipient, WebhookRecipient, OnCall, OnCallContact, Recording,
    RecordingPeriod, Transfer, Hosting,
)  # fmt: skip


def _keys(model: type[BaseModel]) -> set[str]:
    return {spec.alias or name for name, spec in model.model_fields.items()}


def _suggestion(key: str, node: object) -> str | None:
    """The key probably meant: among the keys of the models that fit the object's other keys."""
    others = {k for k in node if isinstance(k, str)} - {key} if isinstance(node, Mapping) else set()
    fitting = [_keys(m) for m in _MODELS if others <= _keys(m)] or [_keys(m) for m in _MODELS]
    vocabulary = set().union(*fitting)
    if key in vocabulary:
        return None
    close = difflib.get_close_matches(key, sorted(vocabulary), n=1, cutoff=0.75)
    return close[0] if close else None


def _node_at(loc: Sequence[int | str], raw: object) -> object:
    node = raw
    for part in loc:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
        else:
            node = node.get(part) if isinstance(node, Mapping) else None
    return node


_MISSING_HINTS: Mapping[str, str] = {
    "legal_basis": " (the Art. 6(1) basis: " + ", ".join(LegalBasis) + ")",
    "kind": " (one of: " + ", ".join(MandateKind) + ")",
    "dpo": " (write `dpo: null` if the controller has no DPO)",
    "retention": " (how long each kind of record is kept, e.g. message: P3M)",
}


def _clean_loc(loc: Sequence[int | str]) -> tuple[int | str, ...]:
    """Drop union tags pydantic inserts (`inline-field`, a recipient kind) from a location."""
    out: list[int | str] = []
    for i, part in enumerate(loc):
        if i >= 2 and isinstance(loc[i - 1], int):
            parent = loc[i - 2]
            if parent == "fields" and part in _FIELD_ITEM_TAGS:
                continue
            if parent == "recipients" and part in _RECIPIENT_KINDS:
                continue
        out.append(part)
    return tuple(out)


def _where(loc: Sequence[int | str], raw: object) -> str:
    """`purposes[1] (message).retention` from a location, naming list items from the input."""
    text = ""
    node: object = raw
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            label_key = {"purposes": "code", "fields": "name", "recipients": "kind"}.get(
                str(previous)
            )
            label = node.get(label_key) if label_key and isinstance(node, Mapping) else None
            if isinstance(label, str) and _CODE.fullmatch(label):
                text += f" ({label})"
        else:
            text += f".{part}" if text else part
            node = node.get(part) if isinstance(node, Mapping) else None
        previous = part
    return text


def _message(err: Mapping[str, Any]) -> str:
    kind: str = err["type"]
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    fixed = {
        "string_type": "must be text",
        "int_type": "must be an integer",
        "int_parsing": "must be an integer",
        "int_from_float": "must be an integer",
        "float_type": "must be a number",
        "float_parsing": "must be a number",
        "bool_type": "must be true or false",
        "bool_parsing": "must be true or false",
        "dict_type": "must be a mapping (key: value)",
        "model_type": "must be a mapping (key: value)",
        "model_attributes_type": "must be a mapping (key: value)",
        "list_type": "must be a list",
        "tuple_type": "must be a list",
        "date_type": "must be a date (YYYY-MM-DD)",
        "date_parsing": "must be a date (YYYY-MM-DD)",
        "date_from_datetime_parsing": "must be a date (YYYY-MM-DD)",
        "date_from_datetime_inexact": "must be a date (YYYY-MM-DD), without a time",
        "string_too_short": "must not be empty",
    }
    if kind in fixed:
        return fixed[kind]
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind in {"enum", "literal_error"}:
        return f"{err['input']!r} is not allowed; expected {ctx.get('expected')}"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"must have at least {n} item{'s' if n != 1 else ''}"
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<"}.get(kind, "<=")
        bound = next(iter(ctx.values()), "?")
        return f"must be {op} {bound}"
    if kind == "union_tag_invalid":
        return f"unknown kind {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return "'kind' is required (one of: " + ", ".join(sorted(_RECIPIENT_KINDS)) + ")"
    return str(err["msg"]).replace("Input should be", "must be")


def _translate(errors: Sequence[ErrorDetails], raw: Mapping[str, Any]) -> list[str]:
    """pydantic errors as `location: problem` lines, without pydantic's vocabulary."""
    problems: list[str] = []
    item_errors = {_clean_loc(e["loc"]) for e in errors}
    for err in errors:
        loc = _clean_loc(err["loc"])
        if err["type"] == "too_short" and any(
            bad[: len(loc)] == loc and len(bad) > len(loc) for bad in item_errors
        ):
            continue  # pydantic counts only valid items: the list's items are reported instead
        if err["type"] == "mandate_rules":
            where = _where(loc, raw)
            problems += [f"{where}: {p}" if where else p for p in err["ctx"]["problems"]]
            continue
        if err["type"] in {"missing", "extra_forbidden"} and loc:
            key = str(loc[-1])
            where = _where(loc[:-1], raw) or "mandate"
            if err["type"] == "missing":
                message = f"'{key}' is required" + _MISSING_HINTS.get(key, "")
            else:
                message = f"unknown key '{key}'"
                close = _suggestion(key, _node_at(loc[:-1], raw))
                if close:
                    message += f" (did you mean '{close}'?)"
            problems.append(f"{where}: {message}")
            continue
        problems.append(f"{_where(loc, raw) or 'mandate'}: {_message(err)}")
    return problems


def _partial_problems(raw: Mapping[str, Any]) -> list[str]:
    """Cross-document problems, read from raw input that did not validate as a whole."""
    raw_catalogue = raw.get("fields")
    catalogue: list[tuple[int, str, Field | None]] = []
    for i, item in enumerate(raw_catalogue if isinstance(raw_catalogue, list) else []):
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            try:
                field: Field | None = Field.model_validate(item)
            except ValidationError:
                field = None
            catalogue.append((i, item["name"], field))
    raw_purposes = raw.get("purposes")
    outlines: list[Outline] = []
    complete = isinstance(raw_purposes, list)
    for i, item in enumerate(raw_purposes if isinstance(raw_purposes, list) else []):
        items = item.get("fields") if isinstance(item, Mapping) else None
        if not isinstance(item, Mapping) or not isinstance(item.get("code"), str):
            complete = False
            continue
        if not isinstance(items, list):
            complete = complete and items is None
            items = []
        refs = tuple(x for x in items if isinstance(x, str))
        basis = item.get("special_category_basis")
        outlines.append(Outline(i, item["code"], basis is not None, refs))
    return catalogue_problems(outlines, catalogue, purposes_complete=complete)


def _without_keys(raw: Any, paths: Sequence[tuple[int | str, ...]]) -> Any:
    """A copy of `raw` without the keys at `paths` (used to drop unknown keys)."""
    if not paths:
        return raw
    if isinstance(raw, Mapping):
        drop = {p[0] for p in paths if len(p) == 1}
        return {
            k: _without_keys(v, [p[1:] for p in paths if len(p) > 1 and p[0] == k])
            for k, v in raw.items()
            if k not in drop
        }
    if isinstance(raw, list):
        return [
            _without_keys(v, [p[1:] for p in paths if len(p) > 1 and p[0] == i])
            for i, v in enumerate(raw)
        ]
    return raw


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def parse_mandate(source: str | bytes | Mapping[str, Any]) -> Mandate:
    """A `Mandate` from YAML or JSON text, or a mapping; raises `MandateInvalid`."""
    raw = _load(source)
    try:
        return Mandate.model_validate(raw)
    except ValidationError as exc:
        problems = _translate(exc.errors(include_url=False), raw) + _partial_problems(raw)
        # An object's own rules run only once its keys are well-formed: check again without
        # the unknown keys (the commonest slip, a typo) to report those rules in the same pass.
        unknown = [_clean_loc(e["loc"]) for e in exc.errors() if e["type"] == "extra_forbidden"]
        if unknown:
            try:
                Mandate.model_validate(_without_keys(raw, unknown))
            except ValidationError as again:
                rules = [e for e in again.errors() if e["type"] == "mandate_rules"]
                problems += _translate(rules, raw)
        raise MandateInvalid(_unique(problems)) from None


def dump_mandate(mandate: Mandate, fmt: Literal["yaml", "json"] = "yaml") -> str:
    """The canonical text of a mandate: keys in schema order; `parse_mandate` reads it back."""
    data = mandate.model_dump(mode="json", by_alias=True)
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    raise ValueError(f"unknown format {fmt!r}: use 'yaml' or 'json'")


def diff_mandates(old: Mandate, new: Mandate) -> str:
    """A unified diff of the canonical YAML of two mandates ("" when they are the same)."""

    def label(m: Mandate) -> str:
        return f"{m.account} v{m.version}" if m.version is not None else f"{m.account} (draft)"

    return "".join(
        difflib.unified_diff(
            dump_mandate(old).splitlines(keepends=True),
            dump_mandate(new).splitlines(keepends=True),
            fromfile=label(old),
            tofile=label(new),
        )
    )
