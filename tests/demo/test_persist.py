import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mcp_conductor.demo._persist import read_json, update_json, write_json_atomic


def test_read_json_of_a_missing_file_is_an_empty_object(tmp_path: Path):
    assert read_json(tmp_path / "missing.json") == {}


def test_write_json_atomic_round_trips_and_leaves_no_temp_file(tmp_path: Path):
    path = tmp_path / "nested" / "data.json"
    write_json_atomic(path, {"b": [1, 2], "a": None})
    write_json_atomic(path, {"a": "replaced"})
    assert read_json(path) == {"a": "replaced"}
    assert [p.name for p in path.parent.iterdir()] == ["data.json"]


@pytest.mark.parametrize(("content", "message"), [("[1, 2]", "JSON object"), ("{oops", "not valid JSON")])
def test_read_json_refuses_anything_but_a_json_object(tmp_path: Path, content: str, message: str):
    path = tmp_path / "data.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_json(path)


def test_update_json_loses_no_increment_under_concurrent_writers(tmp_path: Path):
    path = tmp_path / "counts.json"

    def bump(data: dict[str, Any]) -> int:
        data["n"] = data.get("n", 0) + 1
        return int(data["n"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: update_json(path, bump), range(200)))
    assert sorted(results) == list(range(1, 201))
    assert json.loads(path.read_text()) == {"n": 200}
