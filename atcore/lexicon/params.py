"""XRPC query parameters: decoding from the query string and validation against `params`.

`params` properties are booleans, integers, strings, or arrays of those. On the wire every value is
a string: booleans are `true`/`false`, integers are decimal, and an array is the parameter repeated
(`?uris=a&uris=b`). An empty value counts as absent, as in the reference implementation; a scalar
parameter given twice is an error rather than a silent pick of one of the values. Parameters the
schema does not declare are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from atcore.lexicon.compose import MISSING, compile_field, default_of
from atcore.lexicon.errors import ValidationError
from atcore.lexicon.schema import ArrayDef, BooleanDef, IntegerDef, ParamsDef, StringDef

ParamsValidator = Callable[[Mapping[str, Any]], dict[str, Any]]
ParamsDecoder = Callable[[Iterable[tuple[str, str]]], dict[str, Any]]

# Longer digit runs are out of the 64-bit range anyway (the integer validator says so).
_DECIMAL: Final = re.compile(r"-?[0-9]{1,20}")


def params_validator(definition: ParamsDef | None) -> ParamsValidator:
    """Validate typed parameters; returns a new dict with defaults filled in."""
    if definition is None:
        return dict
    required = frozenset(definition.required)
    # Params never contain refs or unions, so no linker is needed.
    fields = tuple(
        (name, compile_field(prop, _NO_LINKS), name in required, default_of(prop))
        for name, prop in definition.properties.items()
    )

    def validate_params(params: Mapping[str, Any]) -> dict[str, Any]:
        result = dict(params)
        for name, check, is_required, default in fields:
            item = params.get(name, MISSING)
            if item is MISSING:
                if is_required:
                    raise ValidationError(f'must have the property "{name}"')
                if default is not MISSING:
                    result[name] = default
                continue
            try:
                result[name] = check(item)
            except ValidationError as exc:
                exc.within(name)
                raise
        return result

    return validate_params


def params_decoder(definition: ParamsDef | None) -> ParamsDecoder:
    """Turn query-string pairs into typed parameters (validation is a separate step)."""
    properties = definition.properties if definition is not None else {}

    def decode_params(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
        decoded: dict[str, Any] = {}
        for name, text in pairs:
            prop = properties.get(name)
            if prop is None or text == "":
                continue
            try:
                if isinstance(prop, ArrayDef):
                    assert isinstance(prop.items, BooleanDef | IntegerDef | StringDef)
                    decoded.setdefault(name, []).append(_decode_scalar(prop.items, text))
                elif name in decoded:
                    raise ValidationError("must not be given more than once")
                else:
                    decoded[name] = _decode_scalar(prop, text)
            except ValidationError as exc:
                exc.within(name)
                raise
        return decoded

    return decode_params


def _decode_scalar(definition: object, text: str) -> Any:
    if isinstance(definition, BooleanDef):
        if text not in ("true", "false"):
            raise ValidationError("must be a boolean (true or false)")
        return text == "true"
    if isinstance(definition, IntegerDef):
        if _DECIMAL.fullmatch(text) is None:
            raise ValidationError("must be an integer")
        return int(text)
    return text


class _NoLinks:
    """Linker for params: the documents parser guarantees they hold no references."""

    def ref_target(self, ref: str) -> Any:
        raise AssertionError(f"params can not reference {ref}")

    def variant_target(self, ref: str) -> Any:
        raise AssertionError(f"params can not reference {ref}")


_NO_LINKS: Final = _NoLinks()
