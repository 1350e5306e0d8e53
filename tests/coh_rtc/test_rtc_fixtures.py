"""One fixture file per error class; each asserts its exact SPEC §14.3 diagnostic lines.

A fixture lists its expected diagnostics in trailing ``# expect: <line>: <field>: <problem>`` comments
(trailing, so they do not shift the line numbers they assert).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from coh_rtc import IRError, compile_ir
from coh_rtc.cli import main

from rtc_helpers import FIXTURES

FIXTURE_FILES = sorted(FIXTURES.glob("*.toml"))


def expected_lines(path: Path, given: str) -> list[str]:
    prefix = "# expect: "
    return [
        f"{given}:{line[len(prefix):]}"
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith(prefix)
    ]


def test_there_is_a_fixture_per_error_class() -> None:
    assert len(FIXTURE_FILES) >= 20
    for path in FIXTURE_FILES:
        assert expected_lines(path, "x"), f"{path.name} asserts nothing"


@pytest.mark.parametrize("fixture", FIXTURE_FILES, ids=lambda p: p.stem)
def test_fixture_diagnostics_are_exact(fixture: Path) -> None:
    given = str(fixture)
    with pytest.raises(IRError) as info:
        compile_ir(given)
    assert info.value.lines == expected_lines(fixture, given)


@pytest.mark.parametrize(
    "name",
    ["msize_8193", "walk_depth_9", "mount_dotdot", "unsupported_schema", "unknown_key", "duplicate_role"],
)
def test_cli_reports_and_writes_nothing(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fixture = FIXTURES / f"{name}.toml"
    out = tmp_path / "generated"
    code = main(
        [
            str(fixture),
            "--out",
            str(out),
            "--manifest",
            str(tmp_path / "m.json"),
            "--cli-script",
            str(tmp_path / "cli" / "boot_v0.coh"),
            "--cohsh-policy",
            str(tmp_path / "p.toml"),
            "--doc-dir",
            str(tmp_path / "docs" / "snippets"),
        ]
    )
    captured = capsys.readouterr()
    expected = expected_lines(fixture, str(fixture))
    assert code == 1
    assert captured.err.splitlines() == expected + [f"coh-rtc: {len(expected)} error(s)"]
    assert captured.out == ""
    assert list(tmp_path.iterdir()) == []


def test_all_errors_are_collected_and_sorted(tmp_path: Path) -> None:
    ir = tmp_path / "many.toml"
    ir.write_text(
        '[root_task]\nschema = "1.0"\n[system]\narch = "aarch64"\ncolour = 1\n'
        "[secure9p]\nwalk_depth = 9\nmsize = 9000\n"
        '[[tickets]]\nrole = "queen"\nsecret = "q"\n',
        encoding="utf-8",
    )
    with pytest.raises(IRError) as info:
        compile_ir(ir)
    assert info.value.lines == [
        f"{ir}:5: system.colour: unknown key",
        f"{ir}:7: secure9p.walk_depth: 9 exceeds maximum 8",
        f"{ir}:8: secure9p.msize: 9000 exceeds maximum 8192",
        f'{ir}:9: tickets: enabled role "worker-gpu" has no [[tickets]] entry',
        f'{ir}:9: tickets: enabled role "worker-heartbeat" has no [[tickets]] entry',
    ]


def test_unreadable_file_is_a_file_level_diagnostic(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    with pytest.raises(IRError) as info:
        compile_ir(missing)
    assert info.value.lines == [f"{missing}:0: -: cannot read file: No such file or directory"]
