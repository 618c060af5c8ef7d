"""Real English prose that ships with Python and its installed packages; the haystack for planted facts.

No network and no hub downloads exist on the training machines, so the corpus is built from what is on disk:
`pydoc_data.topics` (the language reference as help text), docstrings of standard-library modules, classes and
functions (read with `ast`, never imported), docstrings of built-in modules, and license texts. Code-heavy lines
are dropped, paragraphs are deduplicated, and each *source* (one topic, one module, one license) goes wholly to
train or to held-out by a stable hash of its name, so the two splits never share a source or a paragraph.

The Python-shipped part depends only on the Python version; licenses depend on the installed packages.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import inspect
import random
import re
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from d2l_rag.training.examples import Split

__all__ = ["cut_text", "prose_passages", "prose_text", "sentence_ends", "source_split"]

_HELDOUT_EVERY = 8  # one source in 8 is held out
_PASSAGE_CHARS = 1500  # consecutive paragraphs of one source are grouped up to this size
_MIN_CHARS = 80  # shorter paragraphs and docstrings are mostly one-liners ("Return the foo.")
_DOCS_PER_PACKAGE = 30_000  # characters of raw docstrings read per installed distribution
_SKIP_DIRS = {"test", "tests", "testing", "idlelib", "turtledemo", "lib2to3", "site-packages", "ensurepip"}
_SKIP_DIRS |= {"vendor", "_vendor", "examples"}
_LICENSE_FILE = re.compile(r"(LICEN[CS]E|COPYING|NOTICE)")
_DOCSTRING = re.compile(  # a string literal opening a module, or right after a line ending in ":"
    r"(?:\A(?:[ \t]*#[^\n]*\n|\s)*|:[ \t]*(?:#[^\n]*)?\n\s*)[rRuU]?(\"{3}|'{3})(.*?)(?<!\\)\1", re.S
)
_CODE_CHARS = set("{}[]<>=_*|\\#@$%^~`")
_PLAIN_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:'\"!?()-–—“”‘’/")
_SENTENCE_END = re.compile(r"[.!?][\"')”’]*(?=\s+[\"'(“‘]?[A-Z0-9])|(?<=\S)(?=\n\n)")  # or a paragraph end


def source_split(source: str) -> Split:
    """Stable (hash-based, not `hash()`-based) assignment of a whole source to one split."""
    group = source.split("/")[0]  # "pkg:flask/readme" and "pkg:flask/license" go together
    digest = hashlib.blake2b(group.encode("utf-8"), digest_size=8).digest()
    return "heldout" if int.from_bytes(digest, "big") % _HELDOUT_EVERY == 0 else "train"


def sentence_ends(text: str) -> list[int]:
    """Offsets just after each sentence or paragraph end (where a sentence may be inserted or the text cut)."""
    return [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]


def cut_text(text: str, chars: int, tolerance: float = 0.05) -> str:
    """`text` cut near `chars`: at the nearest sentence end within `tolerance`, else at a word boundary."""
    if chars >= len(text):
        return text
    end = min(sentence_ends(text), key=lambda e: abs(e - chars))
    if abs(end - chars) <= tolerance * chars:
        return text[:end]
    head = text[:chars]
    return head.rsplit(maxsplit=1)[0] if " " in head.strip() else head


def _is_prose(paragraph: str) -> bool:
    """Plain sentences only: long enough, ends like a sentence, few code symbols or identifiers."""
    if len(paragraph) < _MIN_CHARS or not re.search(r"[\w)\"”'’][.!?:][\"')”’]*$", paragraph):
        return False
    if sum(c in _CODE_CHARS for c in paragraph) > 0.05 * len(paragraph):
        return False
    if sum(c in _PLAIN_CHARS for c in paragraph) < 0.95 * len(paragraph):
        return False
    letters = [c for c in paragraph if c.isalpha()]
    if sum(c.isupper() for c in letters) > 0.3 * len(letters):  # shouted license clauses, tables of names
        return False
    words = paragraph.split()
    identifiers = sum(bool(re.search(r"\w\.\w|\w\(|\)\w", w)) for w in words)
    return len(words) >= 12 and identifiers <= 0.15 * len(words)


def _paragraphs(text: str) -> list[str]:
    """Blank-line separated blocks, with prompt/grammar/underline lines removed and whitespace collapsed."""
    out = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [ln.strip() for ln in block.split("\n")]
        if any(ln.startswith((">>>", "...", "$ ")) or "::=" in ln for ln in lines):
            continue
        lines = [ln for ln in lines if ln and not re.fullmatch(r"[\W_]+", ln)]
        paragraph = " ".join(" ".join(lines).split())
        if _is_prose(paragraph):
            out.append(paragraph)
    return out


def _pydoc_sources() -> Iterator[tuple[str, str]]:
    from pydoc_data.topics import topics

    for name, text in sorted(topics.items()):
        yield f"pydoc:{name}", text


def _docstrings(source: str) -> list[str]:
    """Module, class and function docstrings of Python source, without importing it.

    A regex rather than `ast`: 15x faster on the ~30 MB read here, and a docstring missed or a stray string
    caught only changes which prose we read.
    """
    return [inspect.cleandoc(m.group(2)) for m in _DOCSTRING.finditer(source) if len(m.group(2)) >= _MIN_CHARS]


def _stdlib_sources() -> Iterator[tuple[str, str]]:
    """Docstrings of pure-Python standard-library modules; a package's modules form one source group."""
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if _SKIP_DIRS.intersection(rel.parts) or rel.parts[0].startswith("config-"):
            continue
        module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        yield f"stdlib:{rel.parts[0].removesuffix('.py')}/{module}", "\n\n".join(_docstrings(_read(path)))
    yield "stdlib:LICENSE", _read(root / "LICENSE.txt")


def _builtin_sources() -> Iterator[tuple[str, str]]:
    """Docstrings of compiled-in modules (part of the interpreter already, so inspecting them is safe)."""
    for name in sorted(sys.builtin_module_names):
        module = sys.modules.get(name) or importlib.import_module(name)
        docs = [getattr(module, attr).__doc__ for attr in sorted(vars(module)) if not attr.startswith("__")]
        docs = [module.__doc__, *(d for d in docs if isinstance(d, str) and len(d) >= _MIN_CHARS)]
        yield f"builtin:{name}", "\n\n".join(d for d in docs if isinstance(d, str))


def _package_sources() -> Iterator[tuple[str, str]]:
    """Per installed distribution: its description (README), license files, and up to a budget of docstrings."""
    for dist in sorted(importlib.metadata.distributions(), key=lambda d: (d.metadata["Name"] or "").lower()):
        name = (dist.metadata["Name"] or "").lower()
        files = sorted(dist.files or [], key=lambda f: (len(f.parts), str(f)))  # top-level modules first
        readme = dist.metadata.get_payload() or dist.metadata["Description"] or ""
        yield f"pkg:{name}/readme", _strip_markup(readme if isinstance(readme, str) else "")
        licenses = [_read(dist.locate_file(f)) for f in files if _LICENSE_FILE.match(f.name.upper())]
        yield f"pkg:{name}/license", "\n\n".join(licenses)
        docs: list[str] = []
        for f in files:
            if sum(map(len, docs)) >= _DOCS_PER_PACKAGE:
                break
            if f.suffix == ".py" and not _SKIP_DIRS.intersection(f.parts[:-1]):
                docs += _docstrings(_read(dist.locate_file(f)))
        yield f"pkg:{name}/docstrings", "\n\n".join(docs)


def _read(path: object) -> str:
    try:
        return Path(str(path)).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _strip_markup(text: str) -> str:
    """Markdown / HTML to plain text: fenced code and tags removed, links reduced to their words."""
    text = re.sub(r"(?ms)^\s*(```|~~~).*?^\s*(```|~~~)", "\n", text)
    text = re.sub(r"<[^>\n]+>", " ", text)
    return re.sub(r"!?\[([^\]\n]*)\]\([^)\n]*\)", r"\1", text)


@functools.lru_cache(maxsize=1)
def _passages_by_source() -> dict[str, list[str]]:
    """Every source's passages; a paragraph seen in an earlier source is dropped, so splits share no text."""
    raw: dict[str, str] = {}
    for source, text in (*_pydoc_sources(), *_stdlib_sources(), *_builtin_sources(), *_package_sources()):
        raw.setdefault(source, text)
    seen: set[str] = set()
    out: dict[str, list[str]] = {}
    for source in sorted(raw):
        passages, current = [], ""
        for paragraph in _paragraphs(raw[source]):
            if paragraph in seen:
                continue
            seen.add(paragraph)
            if current and len(current) + len(paragraph) > _PASSAGE_CHARS:
                passages.append(current)
                current = ""
            current = f"{current}\n\n{paragraph}" if current else paragraph
        if current:
            passages.append(current)
        if passages:
            out[source] = passages
    return out


@functools.lru_cache(maxsize=2)
def _passages(split: Split) -> tuple[str, ...]:
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    return tuple(p for src, ps in _passages_by_source().items() if source_split(src) == split for p in ps)


def prose_passages(split: Split) -> list[str]:
    """The split's passages (a few paragraphs of one source each), in a fixed order; built once per process."""
    return list(_passages(split))


def prose_text(rng: random.Random, target_chars: int, split: Split) -> str:
    """About `target_chars` of consecutive passages from a random start, cut at a sentence end if one is near.

    Consecutive passages mostly come from one source, so the text reads as a document rather than a shuffle.
    The corpus wraps around when `target_chars` exceeds it (long held-out documents repeat text).
    """
    passages = _passages(split)
    i = rng.randrange(len(passages))
    parts, total = [], 0
    while total < target_chars:
        parts.append(passages[i % len(passages)])
        total += len(parts[-1]) + 2
        i += 1
    return cut_text("\n\n".join(parts), target_chars, tolerance=0.1)
