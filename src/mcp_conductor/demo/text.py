"""Demo MCP server "text": word statistics, keywords, case conversion and extractive summaries.

Pure and deterministic: the same input always gives the same output. Run over stdio with
``python -m mcp_conductor.demo.text``.
"""

import re
from collections import Counter
from typing import Annotated, Literal

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

server = MCPServer(
    "text",
    version="0.1.0",
    instructions="Deterministic text utilities: statistics, keywords, case conversion, summaries.",
    log_level="WARNING",
)

_PURE = ToolAnnotations(read_only_hint=True, idempotent_hint=True, destructive_hint=False, open_world_hint=False)
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")  # after . ! ? or at a blank line (paragraph end)
_HEADING = re.compile(r"^[ \t]*#.*$", re.MULTILINE)
_STOP_WORDS_TEXT = """
a about above after again against all am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her here
hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
off on once only or other our ours ourselves out over own same she should so some such than that the their
theirs them themselves then there these they this those through to too under until up very was we were what
when where which while who whom why will with would you your yours yourself yourselves
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())

Text = Annotated[str, Field(max_length=1_000_000, description="The text to work on (plain text or markdown).")]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WordStats(_Out):
    words: int = Field(description="Number of words.")
    unique_words: int = Field(description="Number of distinct words, ignoring case.")
    sentences: int = Field(description="Number of sentences (split after '.', '!' or '?').")
    characters: int = Field(description="Number of characters, spaces included.")


class Keywords(_Out):
    keywords: list[str] = Field(description="Most frequent non-stop-words, most frequent first.")


class ConvertedText(_Out):
    text: str = Field(description="The converted text.")


class Summary(_Out):
    summary: str = Field(description="The first sentences of the text, joined by single spaces.")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: split after '.', '!' or '?' followed by whitespace and at blank lines; a
    trailing fragment counts. Whitespace inside a sentence (line breaks of wrapped text) becomes one space.
    """
    return [s for s in (" ".join(part.split()) for part in _SENTENCE_END.split(text)) if s]


def _identifier_words(text: str) -> list[str]:
    text = re.sub(r"['’]", "", text)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)  # camelCase -> camel Case
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", text)  # HTTPServer -> HTTP Server
    return [w.lower() for w in re.findall(r"[^\W_]+", text)]


@server.tool(annotations=_PURE)
async def word_stats(text: Text) -> WordStats:
    """Count the words, distinct words (case-insensitive), sentences and characters of a text.

    Use it to measure a document before summarizing it or to compare lengths of texts.
    """
    words = [w.lower() for w in _WORD.findall(text)]
    return WordStats(
        words=len(words),
        unique_words=len(set(words)),
        sentences=len(split_sentences(text)),
        characters=len(text),
    )


@server.tool(annotations=_PURE)
async def keywords(
    text: Text,
    top: Annotated[int, Field(ge=1, le=100, description="How many keywords to return at most.")] = 5,
) -> Keywords:
    """Extract the most frequent meaningful words of a text.

    Words are lowercased; common English stop words ("the", "and", ...) and one-letter words are dropped.
    Ranked by frequency, ties broken alphabetically, so the result is deterministic.
    """
    words = (w.lower() for w in _WORD.findall(text))
    counts = Counter(w for w in words if len(w) > 1 and w not in STOP_WORDS)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return Keywords(keywords=[word for word, _ in ranked[:top]])


@server.tool(annotations=_PURE)
async def convert_case(
    text: Text,
    mode: Annotated[
        Literal["upper", "lower", "title", "snake", "kebab", "camel"],
        Field(
            description="upper: 'HELLO WORLD'; lower: 'hello world'; title: 'Hello World'; "
            "snake: 'hello_world'; kebab: 'hello-world'; camel: 'helloWorld'."
        ),
    ],
) -> ConvertedText:
    """Convert a text to another letter case or identifier style.

    upper, lower and title keep spacing and punctuation. snake, kebab and camel turn the text into one
    identifier: words are split on spaces, punctuation and camelCase boundaries, and apostrophes are dropped.
    """
    match mode:
        case "upper":
            out = text.upper()
        case "lower":
            out = text.lower()
        case "title":
            out = re.sub(r"\S+", lambda m: m[0][:1].upper() + m[0][1:].lower(), text)
        case "snake" | "kebab":
            out = ("_" if mode == "snake" else "-").join(_identifier_words(text))
        case "camel":
            first, *rest = _identifier_words(text) or [""]
            out = first + "".join(w.capitalize() for w in rest)
    return ConvertedText(text=out)


@server.tool(annotations=_PURE)
async def summarize(
    text: Text,
    sentences: Annotated[int, Field(ge=1, le=50, description="How many leading sentences to keep.")] = 2,
) -> Summary:
    """Summarize a text by keeping its first sentences (extractive, deterministic, no model involved).

    Markdown heading lines ('# ...') are skipped. Good for a quick gist of notes or documents whose first
    sentences carry the point.
    """
    return Summary(summary=" ".join(split_sentences(_HEADING.sub("", text))[:sentences]))


if __name__ == "__main__":
    server.run()
