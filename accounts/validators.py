import unicodedata

from django.core.exceptions import ValidationError


def no_control_characters(value: str) -> None:
    """Names and reasons are shown on dashboards and in notifications: refuse
    invisible control characters (tabs and newlines are fine)."""
    for char in value:
        if char not in "\t\n\r\u200c\u200d" and unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co"):
            raise ValidationError(f"Remove the control character U+{ord(char):04X}.", code="control_character")
