"""text/csv for the endpoints that offer a table (`?format=csv`)."""

import csv
import io

from rest_framework.renderers import BaseRenderer

# A cell a spreadsheet would run as a formula (CSV injection) gets a leading quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value):
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


class CSVRenderer(BaseRenderer):
    """Renders a list of rows (the first one the header) as CSV."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        for row in data or []:
            writer.writerow([_cell(value) for value in row])
        return out.getvalue().encode(self.charset)
