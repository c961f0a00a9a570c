"""The layers of docs/architecture.md hold: no import cycle among cnnkit modules, no import that points up."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_tool():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycles_and_no_layer_violations():
    tool = load_tool()
    edges = tool.graph()
    assert len(edges) > 100  # it did read the package
    assert tool.cycles(edges) == []
    assert tool.layer_violations(edges) == []


def test_the_tool_sees_function_level_and_type_checking_imports(tmp_path):
    tool = load_tool()
    edges = tool.graph()
    # a lazy import inside a function (the pipeline's, of the recognizer's models) is an edge
    assert "cnnkit.faces.recognizer" in edges["cnnkit.faces.pipeline"]
    assert "cnnkit.faces.pipeline" in edges["cnnkit.faces.gallery.gallery"]  # under TYPE_CHECKING and in _embed
    # and a made-up cycle is found
    assert tool.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert tool.layer_violations({"cnnkit.errors": {"cnnkit.faces.api"}})
