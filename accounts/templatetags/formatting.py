"""`{{ value|when }}` and `{{ start|when_range:end }}`: the shared date format in templates."""

from django import template

from accounts import formatting

register = template.Library()


@register.filter
def when(value):
    return formatting.when(value) if value else ""


@register.filter
def when_range(start, end):
    return formatting.when_range(start, end) if start and end else ""
