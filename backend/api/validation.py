"""Request validators for connexion that name the field at fault (errors: [{field, message}])."""

from __future__ import annotations

from typing import Any

from connexion.datastructures import MediaTypeDict
from connexion.validators import JSONRequestBodyValidator, ParameterValidator
from jsonschema import ValidationError

from backend.errors import FieldError, InputError

_MAX_ERRORS = 20


def describe(error: ValidationError, prefix: str) -> FieldError:
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        return FieldError(".".join([prefix, *path, missing]).strip("."), "is required")
    if error.validator == "additionalProperties":
        extra = error.message.split("'")[1] if "'" in error.message else ""
        return FieldError(".".join([prefix, *path, extra]).strip("."), "is not a known field")
    plain = _PLAIN.get(str(error.validator))
    message = plain(error.validator_value) if plain else error.message  # plain: never echo the refused value
    message = message if len(message) <= 200 else message[:199] + "…"
    return FieldError(".".join([prefix, *path]).strip(".") or prefix or "body", message)


_PLAIN: dict[str, Any] = {
    "pattern": lambda pattern: f"does not match the pattern {pattern}",
    "maxLength": lambda limit: f"must be at most {limit} characters",
    "minLength": lambda limit: f"must be at least {limit} characters",
    "enum": lambda allowed: "must be one of " + ", ".join(map(str, allowed)),
    "type": lambda wanted: f"must be of type {wanted}",
    "format": lambda wanted: f"must be a valid {wanted}",
}


class FieldNamingBodyValidator(JSONRequestBodyValidator):  # type: ignore[misc]
    def _validate(self, body: Any) -> dict[str, Any] | None:
        if not self._nullable and body is None:
            raise InputError.for_field("body", "a JSON body is required")
        errors = sorted(self._validator.iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))
        if errors:
            fields = [describe(e, "") for e in errors[:_MAX_ERRORS]]
            raise InputError("; ".join(f"{f.field}: {f.message}" for f in fields[:5]), fields)
        return None

    async def _parse(self, stream: Any, scope: Any) -> Any:
        try:
            return await super()._parse(stream, scope)
        except Exception as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError.for_field("body", "is not valid JSON") from None


class FieldNamingParameterValidator(ParameterValidator):  # type: ignore[misc]
    def validate_request(self, request: Any) -> None:
        errors: list[FieldError] = []
        if self.strict_validation:
            extra = self.validate_query_parameter_list(request, security_params=self.security_query_params)
            errors.extend(FieldError(name, "is not a known query parameter") for name in sorted(extra))
        checks = (("query", self.validate_query_parameter), ("path", self.validate_path_parameter),
                  ("header", self.validate_header_parameter), ("cookie", self.validate_cookie_parameter))
        for location, check in checks:
            for param in self.parameters.get(location, []):
                if check(param, request):
                    errors.append(FieldError(param["name"], _short_reason(param, location)))
        if errors:
            raise InputError("; ".join(f"{e.field}: {e.message}" for e in errors), errors)


def _short_reason(param: dict[str, Any], location: str) -> str:
    schema = param.get("schema", {})
    hints = [f"{k} {schema[k]}" for k in ("type", "pattern", "minimum", "maximum", "maxLength", "enum") if k in schema]
    return f"is not a valid {location} parameter" + (f" ({', '.join(hints)})" if hints else "")


VALIDATOR_MAP: dict[str, Any] = {
    "parameter": FieldNamingParameterValidator,
    "body": MediaTypeDict({"*/*json": FieldNamingBodyValidator}),
}
