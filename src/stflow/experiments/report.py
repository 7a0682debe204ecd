"""The report of ``stflow reproduce``: ``report.md`` and a self-contained ``report.html``.

Both hold the same content; the HTML embeds every figure as a base64 PNG, so it opens in a
browser with no server and no network. The table at the top is the table of contents: each
experiment's name links to its section, and each section links back to it. Every figure is
numbered and captioned with what to look at (the experiment's ``captions``). The
markdown-to-HTML conversion covers what the experiments write: headings (with the anchors
GitHub gives them), paragraphs, bullet lists, tables, images with a caption line, links,
inline code and bold.
"""

from __future__ import annotations

import ast
import base64
import html
import platform
import re
from pathlib import Path

from ..output import atomic_output

__all__ = ["report_markdown", "markdown_to_html", "write_report", "heading_anchor",
           "plain_text"]


def _plain_value(v) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} = {_plain_value(x)}" if not isinstance(x, dict)
                         else f"{k}: ({_plain_value(x)})" for k, x in v.items())
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_plain_value(x) for x in v) + "]"
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def plain_text(text: str) -> str:
    """Python dict literals in a report's prose (``{'kind': 'ring', 'chords': 3}``) as
    readers write them (``kind = ring, chords = 3``); nested dicts in parentheses.

    Examples
    --------
    >>> plain_text("graph `{'kind': 'ring', 'chords': 3}`, net {'slow': {'latency': 0.001}}")
    'graph `kind = ring, chords = 3`, net slow: (latency = 0.001)'
    """
    out, i = [], 0
    while i < len(text):
        j = text.find("{", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        depth, k = 0, j
        while k < len(text):
            depth += {"{": 1, "}": -1}.get(text[k], 0)
            if depth == 0:
                break
            k += 1
        chunk = text[j:k + 1]
        try:
            value = ast.literal_eval(chunk)
        except (ValueError, SyntaxError):
            value = None
        if isinstance(value, dict) and value:
            out.append(_plain_value(value))
        else:
            out.append(chunk)
        i = k + 1
    return "".join(out)


def heading_anchor(text: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to ``-``.

    Examples
    --------
    >>> heading_anchor("E3: Communication: bits to reach 1e-6")
    'e3-communication-bits-to-reach-1e-6'
    """
    slug = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return slug.replace(" ", "-")


def _section_heading(r: dict) -> str:
    return f"{r['name']}: {r['title']}"


def _caption(text: str) -> str:
    """One line, no ``*`` (it closes the italic caption line) and no ``]``."""
    return " ".join(str(text).replace("*", "").replace("]", ")").split())


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
        "## Contents",
        "",
        "| experiment | title | status | seconds | figures |",
        "|---|---|---|---|---|",
    ]
    number = 0
    for r in results:
        status = "ok" if r["ok"] else "**FAILED**"
        n_fig = len(r.get("figures", []))
        figs = ", ".join(str(number + k + 1) for k in range(n_fig)) or "-"
        number += n_fig
        anchor = heading_anchor(_section_heading(r))
        lines.append(f"| [{r['name']}](#{anchor}) | {r['title']} | {status} | "
                     f"{r.get('seconds', 0.0):.1f} | {figs} |")
    lines.append("")
    number = 0
    for r in results:
        lines += [f"## {_section_heading(r)}", ""]
        if not r["ok"]:
            lines += [f"**FAILED**: `{r.get('error')}`", ""]
            tb = r.get("traceback")
            if tb:
                lines += ["```", tb.rstrip(), "```", ""]
            lines += ["[Back to the contents](#contents)", ""]
            continue
        lines += ["### Setting", "", plain_text(r["setting"].strip()), "",
                  "### Prediction", "", plain_text(r["prediction"].strip()), "",
                  "### Measured", "", plain_text(r["measured"].strip()), ""]
        captions = r.get("captions") or {}
        for fig in r.get("figures", []):
            number += 1
            what = _caption(captions.get(fig, Path(fig).stem.replace("_", " ")))
            lines += [f"![Figure {number} ({r['name']})]({fig})",
                      f"*Figure {number} ({r['name']}). {what}*", ""]
        lines += ["[Back to the contents](#contents)", ""]
    return "\n".join(lines)


_INLINE_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)]+)\)$")
_CAPTION = re.compile(r"^\*([^*].*[^*])\*$")


def _rich(text: str) -> str:
    """Escape ``text``, then render bold and ``[text](href)`` links."""
    out = _BOLD.sub(r"<strong>\1</strong>", html.escape(text, quote=False))

    def link(m):
        href = m.group(2).replace('"', "&quot;")
        return f'<a href="{href}">{m.group(1)}</a>'

    return _LINK.sub(link, out)


def _inline(text: str) -> str:
    parts = _INLINE_CODE.split(text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<code>{html.escape(part)}</code>")
        else:
            out.append(_rich(part))
    return "".join(out)


def _cells(line: str) -> list[str]:
    inner = line.strip()[1:]
    if inner.endswith("|") and not inner.endswith("\\|"):
        inner = inner[:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]


def markdown_to_html(md: str, *, image_src=None) -> str:
    """Convert the report's markdown subset to an HTML body.

    ``image_src(path) -> str`` maps an image path to its ``src`` (e.g. a data URI).

    Headings get ``id`` = :func:`heading_anchor` (a repeated one gets ``-1``, ``-2``, ... as
    on GitHub), so ``[E2](#e2-...)`` links work in both files. An image line directly
    followed by a line in ``*...*`` becomes a ``<figure>`` with that line as its caption.

    Examples
    --------
    >>> markdown_to_html("# T\\n\\n| a | b |\\n|---|---|\\n| [x](#t) | **y** |")
    '<h1 id="t">T</h1>\\n<table>\\n<tr><th>a</th><th>b</th></tr>\\n<tr><td><a href="#t">x</a></td><td><strong>y</strong></td></tr>\\n</table>'
    >>> print(markdown_to_html("![F](a.png)\\n*Figure 1. Look at `t`.*"))
    <figure><img alt="F" src="a.png"><figcaption>Figure 1. Look at <code>t</code>.</figcaption></figure>
    """
    lines = md.split("\n")
    out: list[str] = []
    para: list[str] = []
    seen: dict[str, int] = {}
    i = 0

    def anchor(text: str) -> str:
        slug = heading_anchor(text)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        return slug if n == 0 else f"{slug}-{n}"

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
            text = s[level:].strip()
            out.append(f'<h{level} id="{html.escape(anchor(text))}">{_inline(text)}</h{level}>')
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
            caption = html.escape(alt)
            nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
            if _CAPTION.match(nxt):
                caption = _inline(_CAPTION.match(nxt).group(1))
                i += 1
            out.append(f'<figure><img alt="{html.escape(alt)}" src="{src}">'
                       f"<figcaption>{caption}</figcaption></figure>")
        else:
            para.append(s)
        i += 1
    flush()
    return "\n".join(out)


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;line-height:1.45;color:#222}
table{border-collapse:collapse;margin:0.8em 0;font-size:0.85em;max-width:100%}
th,td{border:1px solid #ccc;padding:0.25em 0.5em;text-align:left;overflow-wrap:anywhere}
td code{overflow-wrap:anywhere}
th{background:#f3f3f3} code{background:#f5f5f5;padding:0 0.2em}
pre{background:#f5f5f5;padding:0.8em;overflow-x:auto;font-size:0.85em}
img{max-width:100%;border:1px solid #eee} figure{margin:1em 0}
figcaption{font-size:0.9em;color:#444;margin-top:0.3em} h2{border-bottom:1px solid #ddd;margin-top:2em}
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
        with atomic_output(path) as f:
            f.write(text.encode("utf-8"))
    return md_path, html_path
