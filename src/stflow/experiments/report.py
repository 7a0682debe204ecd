"""The report of ``stflow reproduce``: ``report.md`` and a self-contained ``report.html``.

Both hold the same content; the HTML embeds every figure as a base64 PNG, so it opens in a
browser with no server and no network. The markdown-to-HTML conversion covers what the
experiments write: headings, paragraphs, bullet lists, tables, images, inline code and bold.
"""

from __future__ import annotations

import base64
import html
import os
import platform
import re
from pathlib import Path

__all__ = ["report_markdown", "markdown_to_html", "write_report"]


def report_markdown(results: list[dict], *, quick: bool, seconds: float, jobs: int) -> str:
    """The report as markdown (figures as relative image links)."""
    from .. import __version__

    ok = sum(r["ok"] for r in results)
    lines = [
        "# stflow reproduction report",
        "",
        f"stflow {__version__}, Python {platform.python_version()}, "
        f"{'quick' if quick else 'full'} sizes, {jobs} job(s), {seconds:.1f} s wall. "
        f"{ok} of {len(results)} experiments succeeded. Every number below comes from a "
        "fixed seed: the same command gives the same numbers (wall-clock times aside).",
        "",
        "| experiment | title | status | seconds |",
        "|---|---|---|---|",
    ]
    for r in results:
        status = "ok" if r["ok"] else "**FAILED**"
        lines.append(f"| {r['name']} | {r['title']} | {status} | {r.get('seconds', 0.0):.1f} |")
    lines.append("")
    for r in results:
        lines += [f"## {r['name']}: {r['title']}", ""]
        if not r["ok"]:
            lines += [f"**FAILED**: `{r.get('error')}`", ""]
            tb = r.get("traceback")
            if tb:
                lines += ["```", tb.rstrip(), "```", ""]
            continue
        lines += ["### Setting", "", r["setting"].strip(), "",
                  "### Prediction", "", r["prediction"].strip(), "",
                  "### Measured", "", r["measured"].strip(), ""]
        for fig in r.get("figures", []):
            lines += [f"![{r['name']}: {Path(fig).stem}]({fig})", ""]
    return "\n".join(lines)


_INLINE_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)]+)\)$")


def _inline(text: str) -> str:
    parts = _INLINE_CODE.split(text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<code>{html.escape(part)}</code>")
        else:
            out.append(_BOLD.sub(r"<strong>\1</strong>", html.escape(part)))
    return "".join(out)


def _cells(line: str) -> list[str]:
    inner = line.strip()[1:]
    if inner.endswith("|") and not inner.endswith("\\|"):
        inner = inner[:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]


def markdown_to_html(md: str, *, image_src=None) -> str:
    """Convert the report's markdown subset to an HTML body.

    ``image_src(path) -> str`` maps an image path to its ``src`` (e.g. a data URI).

    Examples
    --------
    >>> markdown_to_html("# T\\n\\n| a | b |\\n|---|---|\\n| `x` | **y** |")
    '<h1>T</h1>\\n<table>\\n<tr><th>a</th><th>b</th></tr>\\n<tr><td><code>x</code></td><td><strong>y</strong></td></tr>\\n</table>'
    """
    lines = md.split("\n")
    out: list[str] = []
    para: list[str] = []
    i = 0

    def flush():
        if para:
            out.append("<p>" + _inline(" ".join(para)) + "</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if s.startswith("```"):
            flush()
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            out.append("<pre>" + html.escape("\n".join(lines[i + 1 : j])) + "</pre>")
            i = j + 1
            continue
        if not s:
            flush()
        elif s.startswith("#"):
            flush()
            level = len(s) - len(s.lstrip("#"))
            out.append(f"<h{level}>{_inline(s[level:].strip())}</h{level}>")
        elif s.startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(lines[i])
                i += 1
            body = ["<table>"]
            head, rest = _cells(rows[0]), rows[2:] if len(rows) > 1 else []
            body.append("<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>")
            for r in rest:
                body.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(r))
                            + "</tr>")
            body.append("</table>")
            out.append("\n".join(body))
            continue
        elif s.startswith("- "):
            flush()
            items = []
            while i < len(lines) and lines[i].strip().startswith("- "):
                items.append(f"<li>{_inline(lines[i].strip()[2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif _IMAGE.match(s):
            flush()
            alt, src = _IMAGE.match(s).groups()
            src = image_src(src) if image_src else src
            out.append(f'<figure><img alt="{html.escape(alt)}" src="{src}">'
                       f"<figcaption>{html.escape(alt)}</figcaption></figure>")
        else:
            para.append(s)
        i += 1
    flush()
    return "\n".join(out)


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;line-height:1.45;color:#222}
table{border-collapse:collapse;margin:0.8em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:left}
th{background:#f3f3f3} code{background:#f5f5f5;padding:0 0.2em}
pre{background:#f5f5f5;padding:0.8em;overflow-x:auto;font-size:0.85em}
img{max-width:100%;border:1px solid #eee} figure{margin:1em 0}
figcaption{font-size:0.8em;color:#666} h2{border-bottom:1px solid #ddd;margin-top:2em}
"""


def write_report(out_dir, results: list[dict], *, quick: bool, seconds: float,
                 jobs: int) -> tuple[Path, Path]:
    """Write ``out_dir/report.md`` and ``out_dir/report.html``; return both paths."""
    out = Path(out_dir)
    md = report_markdown(results, quick=quick, seconds=seconds, jobs=jobs)

    def data_uri(rel: str) -> str:
        data = (out / rel).read_bytes()
        return "data:image/png;base64," + base64.b64encode(data).decode("ascii")

    body = markdown_to_html(md, image_src=data_uri)
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>stflow reproduction report</title>"
            f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n")
    md_path, html_path = out / "report.md", out / "report.html"
    for path, text in ((md_path, md + "\n"), (html_path, page)):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return md_path, html_path
