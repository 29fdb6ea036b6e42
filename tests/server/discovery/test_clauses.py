from mcp_conductor.client_pool.catalog import ServerName, ToolInfo
from mcp_conductor.server.discovery.clauses import SINK_WORDS, SOURCE_WORDS, Clause, clauses
from mcp_conductor.server.discovery.index import ToolIndex
from mcp_conductor.server.discovery.search import rank


def test_clauses_that_say_their_verb_imply_nothing():
    assert clauses("list a directory, read files and convert the text to upper case") == [
        Clause("list a directory"),
        Clause("read files"),
        Clause("convert the text to upper case"),
    ]


def test_a_query_of_one_clause_with_a_verb_has_no_clauses():
    assert clauses("convert celsius into fahrenheit") == []


def test_noun_phrases_a_task_starts_from_are_read_and_those_it_ends_in_are_written():
    query = "current time, recent git commits and a todo file combined into a journal file and a knowledge graph note"
    assert clauses(query) == [
        Clause("current time", SOURCE_WORDS),
        Clause("recent git commits", SOURCE_WORDS),
        Clause("a todo file combined", SOURCE_WORDS),
        Clause("a journal file", SINK_WORDS),
        Clause("a knowledge graph note", SINK_WORDS),
    ]


def test_verbs_of_keeping_ask_for_tools_that_create_or_write():
    found = clauses("read the first line of every note and remember each in the knowledge graph")
    assert found == [
        Clause("read the first line of every note"),
        Clause("remember each in the knowledge graph", SINK_WORDS),
    ]
    assert clauses("the unstaged diff, written to a file")[-1] == Clause("written to a file", SINK_WORDS)


def test_a_verbless_clause_listed_after_a_verb_does_what_that_verb_says():
    assert clauses("create entities and a relation in the graph")[1] == Clause("a relation in the graph", "creat")


def test_a_destination_after_a_verb_that_speaks_stays_in_its_clause():
    assert clauses("list the notes, then convert the list into a table") == [
        Clause("list the notes"),
        Clause("convert the list into a table"),
    ]


def tool(tool_id: str, description: str) -> ToolInfo:
    server, _, name = tool_id.partition("/")
    return ToolInfo(ServerName(server), name, description, input_schema={"type": "object"})


GRAPH_AND_FILES = [
    tool("memory/read_graph", "Read the entire knowledge graph"),
    tool("memory/create_entities", "Create multiple new entities in the knowledge graph"),
    tool("memory/delete_relations", "Delete multiple relations from the knowledge graph"),
    tool("memory/delete_entities", "Delete multiple entities from the knowledge graph"),
    tool("memory/search_nodes", "Search for nodes in the knowledge graph based on a query"),
    tool("files/read_text_file", "Read the complete contents of a file as text"),
    tool("files/write_file", "Create a new file or overwrite an existing file with new content"),
    tool("files/move_file", "Move or rename files and directories"),
    tool("files/search_files", "Search for files matching a pattern"),
    tool("files/get_file_info", "Retrieve metadata about a file"),
    tool("time/get_current_time", "Get current time in a specific timezone"),
]


def test_every_clause_of_a_task_gets_its_tools_into_the_answer_and_the_whole_task_its_best_first():
    index = ToolIndex.build(GRAPH_AND_FILES)
    query = "current time and a todo file combined into a journal file and a knowledge graph note"
    hits = [hit.tool.id for hit in rank(index, query, top_k=5)]
    assert len(hits) == 5
    assert {"time/get_current_time", "files/read_text_file", "files/write_file", "memory/create_entities"} <= set(hits)
    assert hits[0] == index.search(query, top_k=1)[0].tool.id


def test_request_openers_are_not_taken_for_the_missing_verb():
    assert clauses("I need to read the README and the todo file") == [
        Clause("I need to read the README"),
        Clause("the todo file", "read"),
    ]


def test_turning_one_thing_into_another_reads_the_one_and_writes_the_other():
    assert clauses("turn the notes into a PDF") == [Clause("turn the notes", SOURCE_WORDS), Clause("a PDF", SINK_WORDS)]
