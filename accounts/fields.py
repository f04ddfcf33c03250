"""Serializer fields that take JSON types at their word: no silent coercion."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """Text must arrive as a JSON string: 42 or true is a client bug, not a name."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictRegexField(serializers.RegexField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def _require_id(field: serializers.Field, data) -> None:
    """An id is a JSON integer (or a string of digits): 7.5 must not become 7."""
    if isinstance(data, bool) or not (isinstance(data, int) or (isinstance(data, str) and data.isdigit())):
        field.fail("incorrect_type", data_type=type(data).__name__)


class StrictPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """An id is a JSON integer (or a string of digits): 7.5 must not become 7."""

    def to_internal_value(self, data):
        _require_id(self, data)
        return super().to_internal_value(data)


@extend_schema_field(OpenApiTypes.INT)
class StrictIdField(serializers.Field):
    """An id checked for its type only, the same way as `StrictPrimaryKeyRelatedField`:
    for the writes that read the row themselves (under a row lock), so it is not read
    twice. The write answers an id that names nothing with `does_not_exist(...)`."""

    default_error_messages = serializers.PrimaryKeyRelatedField.default_error_messages

    def to_internal_value(self, data):
        _require_id(self, data)
        return int(data)

    def to_representation(self, value):
        return value


def does_not_exist(pk_value) -> str:
    """What `StrictPrimaryKeyRelatedField` says of an id that names nothing."""
    return str(serializers.PrimaryKeyRelatedField.default_error_messages["does_not_exist"]).format(pk_value=pk_value)
