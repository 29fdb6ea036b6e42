"""A task statement's clauses, and the action each one asks for when it does not say it.

People and models write tasks as lists of capabilities: "list a folder, read the files and write a summary"
has three clauses, each searched on its own so every capability gets its best tools into ``discover_tools``'s
answer. Many clauses name a thing and no verb: "current time, recent git commits and a todo file combined into a
journal file and a knowledge graph note". A noun phrase alone ranks tools by the noun, whatever they do to it
(``read_graph`` and ``delete_relations`` for "a knowledge graph note"), while the task means an action:

- a thing the task starts from (a source: "current time", "a todo file") is to be got or read;
- a thing the task ends in (a destination: after "into"/"onto", or joined by "and" to one: "into a journal
  file and a knowledge graph note") is to be created or written;
- a verb that means keeping something ("remember each in the knowledge graph", "save it", "store ...") asks for
  a tool that creates or writes, whatever word the tool's name uses for it.

Each clause carries the words of its implied action (``SOURCE_WORDS``, ``SINK_WORDS``), which the index counts
at a reduced weight (``FieldWeights.implied_weight``): they break ties among the tools the clause's own words
found, not override those words. A clause with another verb ("convert a time", "list a folder") implies nothing.

Pure; English only, like the rest of the analyzer (``text``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mcp_conductor.server.discovery.text import SYNONYM_GROUPS, stem

SOURCE_WORDS = "get read show"
SINK_WORDS = "create write save"

# Verbs that mean keeping something somewhere: the clause asks for a tool that creates or writes.
_KEEPING = (
    *("write", "written", "wrote", "save", "store", "persist", "put", "remember", "record", "memorize", "memorise"),
    *("keep", "kept"),
)
# Verbs a task uses to ask for an action (beside those of the synonym groups): a clause with one says its action.
_ACTIONS = """
    copy move rename compare count calculate compute check open close upload sort filter echo sum subtract multiply
    divide print draw plot chart render format parse validate verify test analyze analyse extract insert append
    commit push merge diff stage unstage checkout clone reset restore tag switch ask answer reply email call ping
    schedule book plan navigate click fill type scroll screenshot install uninstall deploy describe explain
    replace encode decode encrypt decrypt compress decompress zip unzip sign review rank rate tell
"""
# Joining words that make a clause's last part a destination: "combined into a journal file".
_DESTINATION = re.compile(r"\s+\b(?:into|onto)\b\s+", re.IGNORECASE)
# Joining words of a list: a verbless clause after one of them does what the clause before it does.
_LISTING = frozenset({",", "and", "plus"})
# Words before a clause's verb that are not its verb ("then also save it").
_FILLERS = frozenset(
    (
        *("then", "also", "please", "just", "finally", "first", "next", "and", "to", "kindly", "now"),
        *("help", "me", "us", "i", "we", "you", "can", "could", "would", "will", "want", "wants", "need", "needs"),
        *("like", "let", "lets"),
    )
)
_BREAK = re.compile(r"\s*([,;:]|\.\s|\band then\b|\bthen\b|\band\b|\bplus\b)\s*", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z]+")


def _stems(words: str | tuple[str, ...]) -> frozenset[str]:
    return frozenset(stem(w) for w in (words.split() if isinstance(words, str) else words))


_KEEPING_STEMS = _stems(_KEEPING)
# The synonym groups whose first word is a verb; the noun groups ("folder", "picture", ...) are not actions.
_VERB_GROUPS = SYNONYM_GROUPS[:12]
_ACTION_STEMS = _stems(tuple(w for group in _VERB_GROUPS for w in group)) | _stems(_ACTIONS) | _KEEPING_STEMS


@dataclass(frozen=True, slots=True)
class Clause:
    """One capability a task asks for: its words, and the words of the action it implies ("" when it says it)."""

    text: str
    implied: str = ""


def clauses(query: str) -> list[Clause]:
    """The clauses of a task statement, each with its implied action; none when the query is one clause that
    says its verb (searching it alone would add nothing to searching the whole query)."""
    found: list[Clause] = []
    previous = ""  # the action of the previous clause: a verbless clause listed after it does the same
    pieces = _BREAK.split(query)
    for i in range(0, len(pieces), 2):
        listed = i > 0 and pieces[i - 1].strip().lower() in _LISTING
        before, after = _split_destination(pieces[i])
        said = _action(before)
        does = said or (previous if listed and previous else SOURCE_WORDS)
        if after is not None and not _speaks(said):
            # "a todo file combined into a journal file": the one is read, the other written.
            found.append(_clause(before, said, does))
            said = _action(after)
            does = said or SINK_WORDS
            found.append(_clause(after, said, does))
        else:
            found.append(_clause(pieces[i].strip(), said, does))
        previous = does
    found = [c for c in found if len(c.text.split()) >= 2 or (c.implied and c.text)]
    if len(found) >= 2 or any(c.implied for c in found):
        return found
    return []


def _speaks(said: str | None) -> bool:
    """Whether a clause's own verb says what it needs ("convert ... into ..."); a verb of keeping does not."""
    return said is not None and said not in _KEEPING_STEMS


def _clause(text: str, said: str | None, does: str) -> Clause:
    """A clause that says ``said`` (None: no verb) and does ``does`` (a verb's stem or implied words)."""
    if _speaks(said):
        return Clause(text)
    return Clause(text, SINK_WORDS if does in _KEEPING_STEMS else does)


def _split_destination(text: str) -> tuple[str, str | None]:
    """The words before "into"/"onto" and those after (None without a destination)."""
    match = _DESTINATION.search(text)
    if match is None:
        return text.strip(), None
    return text[: match.start()].strip(), text[match.end() :].strip()


def _action(text: str) -> str | None:
    """The action a clause says: the stem of its first word when that is a verb ("list a folder"), a verb of
    keeping anywhere ("the diff, written to a file"), else None (a noun phrase: "recent git commits")."""
    words = [w.lower() for w in _WORD.findall(text)]
    while words and words[0] in _FILLERS:
        words.pop(0)
    if words and (first := stem(words[0])) in _ACTION_STEMS:
        return first
    keeping = [s for s in map(stem, words) if s in _KEEPING_STEMS]
    return keeping[0] if keeping else None
