"""Text analysis for tool discovery: identifier splitting, tokenizing, light stemming, synonyms, query cues.

Tool names are identifiers (``getWeatherForecast``, ``read_text_file``, ``list-dir``), tool descriptions are
prose, and queries are whole task statements written by people or models ("Please read /root/data.xlsx and
tell me ..."). One analyzer serves all three so a query word meets the same term in a name or a description:

- identifiers split on camelCase, snake_case, kebab-case and letter/digit boundaries;
- everything is lower-cased and stripped of English stop words and of request boilerplate ("please", "help");
- a small suffix stripper folds plurals and verb forms (``files``/``file``, ``created``/``create``);
- long base64/hex blobs (embedded images, hashes) are dropped before splitting, so they cannot flood a query.

Task statements get two more cues (``query_terms``): a file path's folder names count little while its
extension and the words "file path" count fully, a web address adds "url website" (plus "domain" for a
bare domain), and a question about the present ("what time is it", "right now") adds "current". Verbs and a few
nouns have synonyms (``SYNONYM_GROUPS``) that ``discovery`` adds to queries.

Tool descriptions get one cue (``deprecation``): a tool that says it is deprecated, and which tool replaces it.

Nothing here is specific to one catalog; ``discovery`` builds the index on top of it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from itertools import chain
from types import MappingProxyType

# Base64/hex-looking runs (data URIs, embedded images, digests): no word in them is meant for ranking.
_BLOB_MIN = 48
_BLOB = re.compile(rf"[A-Za-z0-9+/=_-]{{{_BLOB_MIN},}}")
# Pieces of one identifier: an acronym before a capitalised word, a (capitalised) word, an acronym, digits.
_IDENT_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+|[^\W\d_A-Za-z]+")

_MAX_TERM_LEN = 30


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOP_WORDS = _wordset(
    """
    a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each either else etc even ever every few for
    from further had has have having he her here hers herself him himself his how however i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours ourselves out
    over own per same she should so some such than that the their theirs them themselves then there these they
    this those through thus to too under until up upon us very via was we were what when where whether which
    while who whom whose why will with within without would yet you your yours yourself yourselves
    please help tell let lets know like want wants need needs i'm im it's give gives kindly sure thanks thank
    e g eg ie using use used uses able may might must shall ok okay
    don doesn didn isn aren wasn weren won wouldn shouldn couldn ll ve re
    """
)

# Common verbs that tool names and task statements use interchangeably. Each group is one meaning; the query
# side expands a word to its group (at a reduced weight), so "fetch the weather" still reaches get_weather.
SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("get", "fetch", "retrieve", "read", "obtain", "load", "pull"),
    ("search", "find", "query", "lookup", "look", "seek", "locate"),
    ("create", "make", "add", "generate", "build"),
    ("delete", "remove", "erase", "drop", "destroy"),
    ("list", "show", "enumerate", "browse"),
    ("send", "post", "publish", "submit"),
    ("update", "edit", "modify", "change", "set"),
    ("write", "save", "store", "persist", "put"),
    ("run", "execute", "start", "launch", "invoke"),
    ("convert", "transform", "translate", "export"),
    ("summarize", "summary", "overview"),
    ("download", "fetch"),
    ("folder", "directory", "dir"),
    ("picture", "image", "photo", "img"),
    ("website", "site", "webpage", "page", "url", "link"),
    # Abbreviations tool names use for words task statements spell out.
    ("statistics", "stats"),
    ("information", "info"),
    ("configuration", "config"),
    ("repository", "repo"),
    ("message", "msg"),
    ("document", "doc"),
    ("database", "db"),
)


def split_identifier(name: str) -> list[str]:
    """Split an identifier into lower-case words.

    Handles camelCase, PascalCase with acronyms, snake_case, kebab-case, dotted names and digit runs:

    >>> split_identifier("HTTPServer2")
    ['http', 'server', '2']
    >>> split_identifier("getWeatherForecast")
    ['get', 'weather', 'forecast']
    """
    return [part.lower() for part in _IDENT_PART.findall(name)]


# Words whose final "s" is not a plural, and words a suffix rule would mangle.
_NO_STEM = _wordset(
    """
    news series species canvas alias atlas bias lens gas chaos always perhaps whereas thus plus
    analysis basis axis thesis status bus campus virus focus bonus census
    """
)
_VOWELS = frozenset("aeiou")


def _has_vowel(stem: str) -> bool:
    return any(c in _VOWELS or (c == "y" and i > 0) for i, c in enumerate(stem))


def stem(word: str) -> str:
    """A light English suffix stripper: plurals, -ing/-ed, -ation/-ization, final y/e.

    Deliberately weaker than Porter's: conflating ``files``/``file`` and ``creating``/``create`` helps
    matching, while folding ``business`` into ``busi`` would not. A final ``e`` is dropped and a final
    consonant-``y`` becomes ``i``, so ``create``/``created``/``creating`` meet at ``creat`` and
    ``query``/``queries`` at ``queri``.
    """
    if len(word) <= 3 or word in _NO_STEM or not word.isascii() or not word.isalpha():
        return word
    w = word
    # Plurals and third person.
    if w.endswith(("sses", "xes", "ches", "shes", "zzes")) or (w.endswith("ies") and len(w) > 4):
        w = w[:-2]  # the "ie" left by "ies" loses its "e" below: movies -> movi, like movie
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    # Verb forms ("speed" and "need" keep their "eed").
    for suffix in ("ing", "ed"):
        if w.endswith(suffix) and not w.endswith("eed") and len(w) - len(suffix) >= 3:
            base = w[: -len(suffix)]
            if not _has_vowel(base):
                break  # string, bring
            w = base
            if w[-1] == w[-2] and w[-1] not in "lsz":
                w = w[:-1]  # running -> run, mapped -> map
            break
    # Nominalisations that keep the verb's meaning: location -> locate, organization -> organize.
    for suffix, repl in (("ization", "ize"), ("ation", "ate")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)] + repl
            break
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    if w.endswith("y") and len(w) > 3 and w[-2] not in _VOWELS:
        w = w[:-1] + "i"  # query, queries, queried -> queri
    return w


def _analyze_word(raw: str) -> tuple[str, ...]:
    """The terms of one raw word run: its identifier parts, stop words and stray letters out, stemmed."""
    terms: list[str] = []
    for part in split_identifier(raw):
        if part in STOP_WORDS or len(part) > _MAX_TERM_LEN:
            continue
        if len(part) == 1 and part.isascii() and part.isalpha():
            continue  # stray letters ("e.g.", "x", the "s" of "it's") carry no meaning
        terms.append(stem(part))
    return tuple(terms)


class _WordCache(dict[str, tuple[str, ...]]):
    """Raw word -> its terms; catalogs and queries repeat words a lot, and a dict lookup runs in C."""

    max_size = 100_000

    def __missing__(self, raw: str) -> tuple[str, ...]:
        terms = _analyze_word(raw)
        if len(self) < self.max_size and len(raw) <= 64:
            self[raw] = terms
        return terms


_WORD_CACHE = _WordCache()


def _strip_blobs(text: str) -> str:
    # Blobs have no whitespace, so a long whitespace-free chunk is a cheap precondition for the regex.
    if len(text) >= _BLOB_MIN and max(map(len, text.split()), default=0) >= _BLOB_MIN:
        return _BLOB.sub(" ", text)
    return text


def tokenize(text: str) -> list[str]:
    """Split ``text`` (prose or identifiers) into index terms: split, lower-cased, stop words out, stemmed.

    >>> tokenize("Please read the files in list-dir")
    ['read', 'fil', 'list', 'dir']
    """
    # Whitespace-separated chunks go to the cache whole: the identifier regex inside drops the punctuation.
    return list(chain.from_iterable(map(_WORD_CACHE.__getitem__, _strip_blobs(text).split())))


# A file path in a task ("/root/markdown/report.md"): its folders name the task's environment more than the
# tool it needs, while its extension says which kind of file a tool must handle.
_PATH = re.compile(r"(?<![\w/])(?:~|\.{1,2})?(?:/[\w.\-]+){2,}/?|\b[A-Za-z]:\\[\w.\\-]+")
_WEB_ADDRESS = re.compile(
    r"\bhttps?://\S+|\b(?:[A-Za-z0-9-]+\.)+(?:com|org|net|io|dev|ai|edu|gov|co|app|info|me|cn|uk|de|fr|jp|ru)\b"
)
_URL_TERMS = tuple(tokenize("url website"))
_DOMAIN_TERMS = tuple(tokenize("url website domain"))
# "What time is it in Tokyo" asks for the current time, not a conversion: the question names the present only
# through its tense, and "now" is a stop word.
_PRESENT = re.compile(
    r"\bwhat\s+(?:time|day|date)\s+is\s+it\b|\bwhat(?:'s|\s+is)\s+the\s+(?:time|date)\b|\bright\s+now\b", re.IGNORECASE
)
_PRESENT_TERMS = tuple(tokenize("current"))
FILE_EXTENSIONS: dict[str, str] = {
    "md": "markdown",
    "markdown": "markdown",
    "txt": "text",
    "doc": "word document",
    "docx": "word document",
    "ppt": "presentation powerpoint",
    "pptx": "presentation powerpoint",
    "xls": "excel spreadsheet",
    "xlsx": "excel spreadsheet",
    "csv": "csv spreadsheet",
    "py": "python",
    "js": "javascript",
    "ts": "typescript",
    "htm": "html",
    "html": "html",
    "json": "json",
    "pdf": "pdf",
    "png": "image",
    "jpg": "image",
    "jpeg": "image",
    "svg": "svg image",
    "mp3": "audio",
    "wav": "audio",
    "mp4": "video",
}


def query_terms(text: str, *, path_weight: float = 0.3, path_terms: str = "file") -> dict[str, float]:
    """Weighted term counts of a task statement: words count 1, words inside file paths ``path_weight``.

    A path's extension counts fully (mapped to what it means, ``.md`` -> markdown) and adds ``path_terms``.
    """
    counts: dict[str, float] = {}

    def add(terms: Iterable[str], weight: float) -> None:
        for term in terms:
            counts[term] = counts.get(term, 0.0) + weight

    text = _strip_blobs(text)
    rest: list[str] = []
    last = 0
    for match in _PATH.finditer(text):
        rest.append(text[last : match.start()])
        last = match.end()
        path = match.group(0).rstrip("/\\.")
        base = re.split(r"[/\\]", path)[-1]
        folders = path[: len(path) - len(base)]
        stem_part, dot, ext = base.rpartition(".")
        if not dot:
            stem_part, ext = base, ""
        add(tokenize(folders), path_weight)
        add(tokenize(stem_part), path_weight)
        meaning = f"{ext} {FILE_EXTENSIONS.get(ext.lower(), '')}"
        add(tokenize(meaning), 1.0)
        add(tokenize(path_terms), 1.0)
    rest.append(text[last:])
    prose = " ".join(rest)
    # A web address asks for web tools, whatever its words; a bare domain may be about the domain itself.
    for match in _WEB_ADDRESS.finditer(prose):
        add(_URL_TERMS if match.group(0).lower().startswith("http") else _DOMAIN_TERMS, 1.0)
    if _PRESENT.search(prose):
        add(_PRESENT_TERMS, 1.0)
    add(tokenize(prose), 1.0)
    return counts


# A deprecation marker: "DEPRECATED" in capitals, "(Deprecated)", a text that starts with it, or "this tool is
# deprecated". Not the word in a description of what a tool does ("Check if packages are deprecated").
_DEPRECATED_MARK = re.compile(r"\bDEPRECATED\b")
_DEPRECATED_SAID = re.compile(
    r"\(deprecated\)|^\W*deprecated\b|\b(?:this|tool|it)\s+(?:is\s+)?(?:now\s+)?deprecated\b", re.IGNORECASE
)
_REPLACEMENT = re.compile(
    r"\b(?:use|replaced\s+by|in\s+favou?r\s+of)\s+[`'\"]?([A-Za-z_][\w.:/-]*?)[`'\"]?(?:\s+instead\b|[\s.,;)]|$)",
    re.IGNORECASE,
)


def _marks_deprecation(text: str) -> bool:
    # The substring test first: almost no description mentions it, and the regexes cost more on long ones.
    if "eprecated" not in text and "EPRECATED" not in text:
        return False
    return bool(_DEPRECATED_MARK.search(text) or _DEPRECATED_SAID.search(text))


def deprecation(*texts: str) -> tuple[bool, str | None]:
    """Whether a tool's texts (title, description) mark it deprecated, and the name of the tool they say
    replaces it, if any.

    >>> deprecation("Read the complete contents of a file as text. DEPRECATED: Use read_text_file instead.")
    (True, 'read_text_file')
    """
    if not any(_marks_deprecation(t) for t in texts):
        return False, None
    for text in texts:
        if found := _REPLACEMENT.search(text):
            return True, found.group(1)
    return True, None


@functools.cache
def synonym_map() -> Mapping[str, tuple[str, ...]]:
    """Stemmed term -> the other stemmed terms of its synonym groups."""
    out: dict[str, set[str]] = {}
    for group in SYNONYM_GROUPS:
        stems = [stem(w) for w in group]
        for s in stems:
            out.setdefault(s, set()).update(x for x in stems if x != s)
    return MappingProxyType({term: tuple(sorted(others)) for term, others in out.items()})
