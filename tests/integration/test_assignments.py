"""nbgrader: checksums equal nbgrader's, the student version as ``nbgrader generate_assignment``
writes it, and tampered cells.

Comparisons with nbgrader itself (its ``compute_checksum``, its ``generate_assignment``
command) run where it is installed, as the test extras install it; the rest runs everywhere.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys

import nbformat
import pytest

from jupyter_cocalc_sync.assignments import checksum as checksums
from jupyter_cocalc_sync.assignments import student_version, tampered_cells
from jupyter_cocalc_sync.client import CocalcSyncClient, ServerError

NBGRADER = importlib.util.find_spec("nbgrader") is not None
needs_nbgrader = pytest.mark.skipif(not NBGRADER, reason="nbgrader is not installed")
PROBLEM = "nbgrader__problem1.ipynb"


def grader(grade_id: str, **flags) -> dict:
    meta = {"grade": False, "solution": False, "locked": False, "grade_id": grade_id}
    return {"nbgrader": {**meta, **flags, "schema_version": 3}}


def known_cells() -> list:
    return [
        nbformat.v4.new_code_cell(
            "def f(x):\n    return x  # ünïcode ✓",
            metadata=grader("f", grade=True, solution=True, points=3),
        ),
        nbformat.v4.new_markdown_cell("Read this.", metadata=grader("intro", locked=True)),
        nbformat.v4.new_code_cell(
            "assert f(1) == 1", metadata=grader("test_f", grade=True, points=0.5)
        ),
    ]


#: what nbgrader 0.9.6's compute_checksum answers for ``known_cells()``
KNOWN_CHECKSUMS = [
    "71390e3d41da86aaee88476cacfe848f",
    "6aa6ce39a3cf06e6e50453143c29d05f",
    "8ed377e4651d8f9f5df1fbecad4a312e",
]


def assignment() -> nbformat.NotebookNode:
    """A generated assignment with every kind of cell and region nbgrader knows."""
    nb = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "celltoolbar": "Create Assignment",
        }
    )
    output = nbformat.v4.new_output("stream", name="stdout", text="instructor output\n")
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "# Homework ✓", id="intro", metadata=grader("intro", locked=True)
        ),
        nbformat.v4.new_code_cell(
            "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b  # SECRET-ADD\n"
            "    ### END SOLUTION\n\nprint('kept')",
            id="add",
            metadata={**grader("add", solution=True), "scrolled": True, "collapsed": False},
            outputs=[output],
            execution_count=3,
        ),
        nbformat.v4.new_code_cell(
            "def mul(a, b):\n    return a * b  # SECRET-MUL",
            id="mul",
            metadata=grader("mul", solution=True),
        ),
        nbformat.v4.new_markdown_cell(
            "SECRET-ESSAY",
            id="essay",
            metadata=grader("essay", grade=True, solution=True, points=2),
        ),
        nbformat.v4.new_code_cell(
            "assert add(1, 2) == 3\n### BEGIN HIDDEN TESTS\nassert add(5, 5) == 10  # SECRET-TEST\n"
            "### END HIDDEN TESTS",
            id="tests",
            metadata=grader("tests", grade=True, points=1.5),
            outputs=[output],
            execution_count=4,
        ),
        nbformat.v4.new_markdown_cell(
            "Explain.\n=== BEGIN MARK SCHEME ===\nSECRET-SCHEME\n=== END MARK SCHEME ===",
            id="task",
            metadata=grader("task", task=True, points=4),
        ),
        nbformat.v4.new_code_cell("print('free cell')", id="free", outputs=[output]),
    ]
    return nb


def nbgrader_release(tmp_path, notebook_path) -> nbformat.NotebookNode:
    """What ``nbgrader generate_assignment`` itself writes for this notebook."""
    course = tmp_path / "course"
    (course / "source" / "ps1").mkdir(parents=True)
    shutil.copy(notebook_path, course / "source" / "ps1" / "nb.ipynb")
    command = [sys.executable, "-m", "nbgrader", "generate_assignment", "ps1", "--no-db"]
    command.append(f"--CourseDirectory.root={course}")
    subprocess.run(command, cwd=course, check=True, capture_output=True, timeout=120)
    return nbformat.read(course / "release" / "ps1" / "nb.ipynb", as_version=4)


def comparable(nb) -> dict:
    """Metadata and cells; without cell ids, which this server adds to notebooks older than
    nbformat 4.5 (nbgrader keeps such notebooks without)."""
    cells = [{k: v for k, v in cell.items() if k != "id"} for cell in nb["cells"]]
    return json.loads(json.dumps({"metadata": nb["metadata"], "cells": cells}))


def test_checksums_are_nbgraders():
    assert [checksums._compute_checksum(c) for c in known_cells()] == KNOWN_CHECKSUMS
    assert [checksums.compute_checksum(c) for c in known_cells()] == KNOWN_CHECKSUMS


@needs_nbgrader
def test_checksums_equal_nbgrader_on_the_corpus_and_generated_cells(corpus_dir):
    from nbgrader.utils import compute_checksum as upstream

    cells = [*known_cells(), *assignment().cells]
    if (corpus_dir / PROBLEM).exists():
        cells += nbformat.read(corpus_dir / PROBLEM, as_version=4).cells
    graded = [c for c in cells if "nbgrader" in c.metadata]
    assert len(graded) >= 8
    assert [checksums._compute_checksum(c) for c in graded] == [upstream(c) for c in graded]


def test_student_version_of_a_generated_assignment():
    student = student_version(json.loads(nbformat.writes(assignment())))
    nbformat.validate(nbformat.from_dict(student))
    text = json.dumps(student)
    assert "SECRET" not in text and "instructor output" not in text
    cells = {c["id"]: c for c in student["cells"]}
    assert cells["add"]["source"] == (
        "def add(a, b):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\nprint('kept')"
    )
    assert cells["mul"]["source"] == "# YOUR CODE HERE\nraise NotImplementedError()"
    assert cells["essay"]["source"] == "YOUR ANSWER HERE"
    assert cells["tests"]["source"] == "assert add(1, 2) == 3"
    add = cells["add"]["metadata"]
    assert add["deletable"] is False and "editable" not in add  # students edit solutions
    assert "scrolled" not in add and "collapsed" not in add  # output metadata cleared
    assert add["nbgrader"]["checksum"] == checksums.compute_checksum(cells["add"])
    assert add["nbgrader"]["cell_type"] == "code"
    assert "checksum" not in cells["free"]["metadata"].get("nbgrader", {})
    assert cells["tests"]["metadata"]["editable"] is False
    assert cells["tests"]["execution_count"] is None and cells["tests"]["outputs"] == []
    assert "celltoolbar" not in student["metadata"]
    assert tampered_cells(student) == []


@needs_nbgrader
def test_student_version_equals_nbgraders_on_a_generated_assignment(tmp_path):
    path = tmp_path / "assignment.ipynb"
    nbformat.write(assignment(), path)
    ours = student_version(json.loads(path.read_text()))
    assert comparable(ours) == comparable(nbgrader_release(tmp_path, path))


async def test_route_writes_the_student_version_of_the_live_notebook(server, root_dir, tmp_path):
    nbformat.write(assignment(), root_dir / "hw.ipynb")
    nb_url = "/api/cocalc-sync/notebooks/hw.ipynb"
    assert (await server.http.get(nb_url)).status_code == 200
    edit = {"type": "cell", "id": "intro", "input": "# Homework ✓ (live edit)"}
    assert (await server.http.post(nb_url + "/records", json={"set": [edit]})).status_code == 200
    client = CocalcSyncClient(server.base_url, server.token)
    try:
        written = await client.write_student_version("hw.ipynb", "release/ps1/hw.ipynb")
        assert written == {"path": "release/ps1/hw.ipynb", "cells": 7, "checksums": 5}
        student = nbformat.read(root_dir / "release" / "ps1" / "hw.ipynb", as_version=4)
        nbformat.validate(student)
        assert student.cells[0].source == "# Homework ✓ (live edit)"
        assert "SECRET" not in nbformat.writes(student)
        with pytest.raises(ServerError) as exists:
            await client.write_student_version("hw.ipynb", "release/ps1/hw.ipynb")
        assert exists.value.status == 409
        for bad in ("../out.ipynb", "release/notes.txt", "hw.ipynb"):
            with pytest.raises(ServerError) as refused:
                await client.write_student_version("hw.ipynb", bad)
            assert refused.value.status == 400, bad
        default = await client.write_student_version("hw.ipynb")
        assert default["path"] == "release/hw.ipynb"
        assert await client.tampered_cells("release/ps1/hw.ipynb") == []
    finally:
        await client.close()


async def test_invalid_assignment_is_422_naming_the_cell(server, root_dir):
    broken = assignment()
    broken.cells[1].source = "### BEGIN SOLUTION\nreturn 1"
    nbformat.write(broken, root_dir / "broken.ipynb")
    reply = await server.http.post(
        "/api/cocalc-sync/notebooks/broken.ipynb/assignment/student", json={"target": "out.ipynb"}
    )
    assert reply.status_code == 422 and "'add'" in reply.json()["message"]
    assert not (root_dir / "out.ipynb").exists()


async def test_tampering_is_reported(server, root_dir):
    student = student_version(json.loads(nbformat.writes(assignment())))
    nbformat.write(nbformat.from_dict(student), root_dir / "submitted.ipynb")
    url = "/api/cocalc-sync/notebooks/submitted.ipynb"
    assert (await server.http.get(url + "/assignment/tampered")).json()["tampered"] == []
    answers = {"type": "cell", "id": "add", "input": "def add(a, b):\n    return a + b"}
    cheat = {"type": "cell", "id": "tests", "input": "assert True"}
    retyped = {"type": "cell", "id": "intro", "cell_type": "code"}
    assert (await server.http.post(url + "/records", json={"set": [answers]})).status_code == 200
    assert (await server.http.get(url + "/assignment/tampered")).json()["tampered"] == []
    await server.http.post(url + "/records", json={"set": [cheat, retyped]})
    tampered = (await server.http.get(url + "/assignment/tampered")).json()["tampered"]
    assert tampered == [
        {"cell_id": "intro", "grade_id": "intro", "index": 0, "reason": "type_changed"},
        {"cell_id": "tests", "grade_id": "tests", "index": 4, "reason": "changed"},
    ]


async def test_corpus_assignment_matches_nbgrader(server, root_dir, corpus_dir, tmp_path):
    if not (corpus_dir / PROBLEM).exists():
        pytest.skip(f"the shared corpus is absent ({corpus_dir})")
    shutil.copy(corpus_dir / PROBLEM, root_dir / "problem1.ipynb")
    reply = await server.http.post(
        "/api/cocalc-sync/notebooks/problem1.ipynb/assignment/student",
        json={"target": "release/problem1.ipynb"},
    )
    assert reply.status_code == 201, reply.text
    ours = nbformat.read(root_dir / "release" / "problem1.ipynb", as_version=4)
    nbformat.validate(ours)
    original = nbformat.read(corpus_dir / PROBLEM, as_version=4)
    solutions = [
        line.strip()
        for cell in original.cells
        for line in cell.source.split("### BEGIN SOLUTION")[1:]
        for line in line.split("### END SOLUTION")[0].splitlines()
        if line.strip()
    ]
    assert solutions and not any(s in nbformat.writes(ours) for s in solutions)
    if NBGRADER:
        assert comparable(ours) == comparable(nbgrader_release(tmp_path, corpus_dir / PROBLEM))
