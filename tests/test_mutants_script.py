"""scripts/mutants.py, the mutation check of issue 18: its applying logic, and that every mutation still applies.

Only the fast part: a snippet is replaced when it occurs exactly once and is an error otherwise, the
copy of the tree is made from ``git ls-files`` (nothing is edited in the checkout), and each mutation's
snippet and test files exist in today's tree -- so moving the code a mutation targets fails here, in the
ordinary suite, rather than silently in a hand-run of the script. Running the mutations is
``doit mutants`` / ``python scripts/mutants.py`` (tens of minutes; not in CI).
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("cohesix_mutants", REPO / "scripts" / "mutants.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


mutants = _load()


def mutation(original: str = "b = 2\n", replacement: str = "b = 3\n", path: str = "pkg/mod.py"):
    return mutants.Mutation(name="demo", path=path, original=original, replacement=replacement,
                            tests=("tests/x.py",), why="demo")


def test_a_snippet_found_once_is_replaced_once():
    assert mutants.mutated_text("a = 1\nb = 2\nc = 3\n", mutation()) == "a = 1\nb = 3\nc = 3\n"


@pytest.mark.parametrize("text, count", [("a = 1\n", 0), ("b = 2\nb = 2\n", 2)])
def test_a_snippet_missing_or_repeated_is_an_error_naming_the_mutation(text, count):
    with pytest.raises(mutants.MutationError, match=rf"demo: the snippet occurs {count} times in pkg/mod.py"):
        mutants.mutated_text(text, mutation())


def test_a_replacement_equal_to_the_original_is_an_error():
    with pytest.raises(mutants.MutationError, match="equals"):
        mutants.mutated_text("b = 2\n", mutation(replacement="b = 2\n"))


def test_apply_mutation_edits_the_file_in_the_given_root_only(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg/mod.py").write_text("a = 1\nb = 2\n")
    mutants.apply_mutation(tmp_path, mutation())
    assert (tmp_path / "pkg/mod.py").read_text() == "a = 1\nb = 3\n"
    with pytest.raises(mutants.MutationError, match="does not exist"):
        mutants.apply_mutation(tmp_path, mutation(path="pkg/gone.py"))


def test_select_keeps_order_and_refuses_unknown_names():
    names = [m.name for m in mutants.MUTATIONS]
    assert [m.name for m in mutants.select([])] == names
    assert [m.name for m in mutants.select([f"{names[2]},{names[0]}", names[2]])] == [names[2], names[0]]
    with pytest.raises(mutants.MutationError, match="no-such-mutation"):
        mutants.select(["no-such-mutation"])


def test_verdicts_a_skip_or_pass_is_never_caught():
    assert [mutants.verdict_for(rc) for rc in (0, 1, 2, 4, 5, None)] == \
        ["NOT CAUGHT", "caught", "ERROR", "ERROR", "ERROR", "TIMEOUT"]
    assert mutants.pytest_summary("....\nF\n1 failed, 3 passed, 1 skipped in 2.50s\n") == \
        "1 failed, 3 passed, 1 skipped in 2.50s"


def test_every_mutation_applies_to_this_tree_and_names_existing_tests():
    assert len({m.name for m in mutants.MUTATIONS}) == len(mutants.MUTATIONS)
    assert mutants.check_applies(REPO, mutants.MUTATIONS) == []
    for m in mutants.MUTATIONS:
        for test in m.tests:
            assert (REPO / test.split("::")[0]).is_file(), (m.name, test)


def test_the_copy_holds_the_listed_files_and_leaves_the_checkout_alone(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / ".gitignore").write_text("/out/*\n!/out/manifests/\n/.venv/\nignored.txt\n")
    (repo / "pkg").mkdir()
    (repo / "pkg/mod.py").write_text("a = 1\nb = 2\n")
    (repo / "ignored.txt").write_text("x")
    (repo / "out/cache/guest-root").mkdir(parents=True)
    (repo / "out/cache/guest-lock.json").write_text("{}")
    (repo / "out/Image").write_bytes(b"kernel")
    (repo / ".venv").mkdir()
    subprocess.run(["git", "add", "pkg/mod.py"], cwd=repo, check=True)
    (repo / "new.py").write_text("untracked, not ignored\n")
    copy = tmp_path / "copy"
    mutants.make_copy(repo, copy)
    assert (copy / "pkg/mod.py").is_file() and (copy / "new.py").is_file() and (copy / ".gitignore").is_file()
    assert not (copy / "ignored.txt").exists()
    assert (copy / ".venv").is_symlink() and (copy / "out/cache/guest-root").is_symlink()
    assert not (copy / "out/Image").is_symlink() and (copy / "out/Image").read_bytes() == b"kernel"
    assert not (copy / "out/cache/guest-lock.json").is_symlink()
    mutants.apply_mutation(copy, mutation())
    assert (copy / "pkg/mod.py").read_text() == "a = 1\nb = 3\n"
    assert (repo / "pkg/mod.py").read_text() == "a = 1\nb = 2\n"
