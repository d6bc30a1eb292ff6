"""HTML building blocks: escaped text, click-to-sort tables, sections, inlined images, style.

Everything that reaches the page goes through `esc` (or is built here from escaped parts), so a
class name, a file path or a config value can never inject markup. The page loads nothing: CSS
and the sort script are inline, images are data: URIs, and a Content-Security-Policy forbids any
other source, so a stray external reference would show up as a console error in the browser test.
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass
from html import escape

DASH = "\u2013"  # shown for a value that does not exist (NaN, no true positive, not measured)

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)


def esc(text: object) -> str:
    return escape(str(text), quote=True)


def slug(*parts: object) -> str:
    """An id fragment: letters, digits, `_` and `.` kept, anything else becomes `_`."""
    return "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", str(p)) for p in parts)


def is_missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def percent(value: float | None) -> str:
    """A fraction in [0, 1] shown as a percentage with one decimal: 0.5234 -> "52.3"."""
    return DASH if is_missing(value) else f"{100 * value:.1f}"


def points(value: float | None) -> str:
    """A difference of fractions in percentage points, signed: 0.123 -> "+12.3"."""
    return DASH if is_missing(value) else f"{100 * value:+.1f}"


def count(value: int | float | None) -> str:
    return DASH if is_missing(value) else f"{int(value):,}"


def fixed(value: float | None, digits: int = 1) -> str:
    return DASH if is_missing(value) else f"{value:,.{digits}f}"


def duration(seconds: float | None) -> str:
    if is_missing(seconds):
        return DASH
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


@dataclass(frozen=True)
class Column:
    label: str
    numeric: bool = True
    title: str | None = None  # a tooltip explaining the column


@dataclass(frozen=True)
class Cell:
    """A table cell; `sort` is the value the sort script compares (None: none, sorts last)."""

    text: str
    sort: float | str | None = None
    id: str | None = None
    header: bool = False  # the row's label: a <th scope="row">
    title: str | None = None


def text_cell(text: object, id: str | None = None, header: bool = False, title: str | None = None) -> Cell:
    return Cell(str(text), sort=str(text), id=id, header=header, title=title)


def number_cell(value: float | int | None, formatted: str, id: str | None = None) -> Cell:
    return Cell(formatted, sort=None if is_missing(value) else value, id=id)


def _sort_attribute(cell: Cell, numeric: bool) -> str:
    if cell.sort is None:
        return ' data-sort=""'
    if numeric and isinstance(cell.sort, (int, float)):
        return f' data-sort="{cell.sort!r}"'
    return f' data-sort="{esc(cell.sort)}"'


def _row(cells: list[Cell], columns: list[Column], row_class: str | None = None) -> str:
    parts = [f'<tr class="{esc(row_class)}">' if row_class else "<tr>"]
    for cell, column in zip(cells, columns):
        tag = "th" if cell.header else "td"
        attributes = ' scope="row"' if cell.header else ""
        attributes += ' class="num"' if column.numeric else ""
        attributes += f' id="{esc(cell.id)}"' if cell.id else ""
        attributes += f' title="{esc(cell.title)}"' if cell.title else ""
        attributes += _sort_attribute(cell, column.numeric)
        parts.append(f"<{tag}{attributes}>{esc(cell.text)}</{tag}>")
    parts.append("</tr>")
    return "".join(parts)


def table(
    table_id: str,
    columns: list[Column],
    rows: list[list[Cell]],
    foot: list[tuple[str | None, list[Cell]]] = (),
    caption: str | None = None,
) -> str:
    """A sortable table: a click on a header reorders the body rows; footer rows stay put."""
    head = "".join(
        f'<th scope="col" data-type="{"number" if c.numeric else "text"}" aria-sort="none"'
        + (' class="num"' if c.numeric else "")
        + (f' title="{esc(c.title)}"' if c.title else "")
        + f'><button type="button">{esc(c.label)}</button></th>'
        for c in columns
    )
    body = "".join(_row(cells, columns) for cells in rows)
    footer = "".join(_row(cells, columns, row_class) for row_class, cells in foot)
    return (
        f'<div class="table-wrap"><table class="sortable" id="{esc(table_id)}">'
        + (f"<caption>{esc(caption)}</caption>" if caption else "")
        + f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
        + (f"<tfoot>{footer}</tfoot>" if footer else "")
        + "</table></div>"
    )


def section(section_id: str, title: str, body: str, level: int = 2) -> str:
    """A linkable section: its heading links to its own anchor."""
    return (
        f'<section id="{esc(section_id)}"><h{level}><a class="anchor" href="#{esc(section_id)}">{esc(title)}</a>'
        f"</h{level}>{body}</section>"
    )


def paragraph(text: str, css_class: str | None = None) -> str:
    return (f'<p class="{esc(css_class)}">' if css_class else "<p>") + esc(text) + "</p>"


def definitions(items: list[tuple[str, str]]) -> str:
    return '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items) + "</dl>"


def png_image(data: bytes, alt: str, width: int, height: int) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}" alt="{esc(alt)}" width="{width}" height="{height}">'


STYLE = """
:root { color-scheme: light; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --head: #eef1f4;
  --foot: #f8f9fa; --paper: #7a4300; --accent: #0b5cad; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: #fff; }
header, main { max-width: 1180px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 16px; }
h1 { font-size: 1.6em; margin: 0.3em 0; }
h2 { font-size: 1.3em; border-bottom: 1px solid var(--line); padding-bottom: 4px; margin-top: 2em; }
h3 { font-size: 1.1em; margin-top: 1.6em; }
a { color: var(--accent); }
a.anchor { color: inherit; text-decoration: none; }
a.anchor:hover::after, a.anchor:focus::after { content: " #"; color: var(--muted); }
nav.toc { border: 1px solid var(--line); border-radius: 6px; padding: 6px 16px; margin: 12px 0;
  background: var(--foot); }
nav.toc ol { margin: 4px 0; padding-left: 22px; }
nav.toc > ol { columns: 2 260px; }
.note, caption { color: var(--muted); }
.note { font-size: 0.92em; }
.table-wrap { max-height: 70vh; overflow: auto; border: 1px solid var(--line); margin: 8px 0 18px;
  width: fit-content; max-width: 100%; }
table { border-collapse: separate; border-spacing: 0; font-size: 14px;
  font-variant-numeric: tabular-nums; }
caption { text-align: left; padding: 6px 10px; font-size: 0.92em; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left;
  white-space: nowrap; vertical-align: top; }
td.wrap { white-space: normal; min-width: 16em; }
.num { text-align: right; }
thead th { position: sticky; top: 0; z-index: 1; background: var(--head); white-space: normal;
  max-width: 10em; vertical-align: bottom; }
thead th button { font: inherit; font-weight: 600; color: inherit; background: none; border: 0;
  padding: 0; cursor: pointer; text-align: inherit; }
thead th[aria-sort="ascending"] button::after { content: " \\25B2"; }
thead th[aria-sort="descending"] button::after { content: " \\25BC"; }
tbody th { font-weight: 500; }
tfoot th, tfoot td { background: var(--foot); }
tr.paper th, tr.paper td { color: var(--paper); font-style: italic; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.plots { display: flex; flex-wrap: wrap; gap: 12px 24px; align-items: flex-start; }
svg.plot { max-width: 100%; height: auto; }
svg.plot text { font: 12px system-ui, sans-serif; fill: var(--fg); }
svg.plot .plot-title { font-weight: 600; }
svg.plot .grid { stroke: #e3e7eb; }
svg.plot .axis, svg.plot .tick-mark { stroke: #444; fill: none; }
svg.plot .na { fill: var(--muted); }
.gallery { display: grid; grid-template-columns: 1fr; gap: 12px; }
figure { margin: 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); image-rendering: pixelated; }
figcaption { font-size: 0.9em; color: var(--muted); }
pre { background: #f6f8fa; border: 1px solid var(--line); padding: 10px; overflow: auto;
  max-height: 60vh; font-size: 13px; }
details summary { cursor: pointer; }
footer { max-width: 1180px; margin: 2em auto; padding: 0 20px; color: var(--muted); font-size: 0.9em; }
"""

# Click-to-sort for every table.sortable: numbers compare as numbers (from data-sort), empty
# values always sort last, text compares naturally; the first click on a number column sorts
# descending (best first), on a text column ascending. Footer rows (means, paper) never move.
SORT_SCRIPT = """
(function () {
  "use strict";
  function keyOf(row, index) {
    var cell = row.cells[index];
    if (!cell) { return ""; }
    var value = cell.getAttribute("data-sort");
    return value === null ? cell.textContent.trim() : value;
  }
  function sortBy(table, header, index) {
    var body = table.tBodies[0];
    if (!body) { return; }
    var numeric = header.getAttribute("data-type") === "number";
    var state = header.getAttribute("aria-sort");
    var descending = state === "none" ? numeric : state === "ascending";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = keyOf(a, index), y = keyOf(b, index);
      if (x === "" || y === "") { return x === y ? 0 : (x === "" ? 1 : -1); }
      var order;
      if (numeric) {
        var fx = parseFloat(x), fy = parseFloat(y);
        if (isNaN(fx) || isNaN(fy)) { return isNaN(fx) === isNaN(fy) ? 0 : (isNaN(fx) ? 1 : -1); }
        order = fx - fy;
      } else {
        order = x.localeCompare(y, undefined, {numeric: true, sensitivity: "base"});
      }
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(header.parentNode.cells, function (th) {
      th.setAttribute("aria-sort", "none");
    });
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    if (!table.tHead) { return; }
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, index) {
      var button = header.querySelector("button");
      if (button) {
        button.addEventListener("click", function () { sortBy(table, header, index); });
      }
    });
  });
})();
"""


def document(title: str, header: str, nav: str, main: str, footer: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CONTENT_SECURITY_POLICY)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n"
        f"<body><header>{header}{nav}</header>\n<main>{main}</main>\n<footer>{footer}</footer>"
        f"<script>{SORT_SCRIPT}</script></body></html>\n"
    )
