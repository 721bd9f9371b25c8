"""One output contract for every command that runs the pipeline: ledger, rejects, report; files appear only when
a run has succeeded, report.json last; a torn batch is never sent."""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import pytest
from apiserver import FakeMiso
from click.testing import CliRunner
from support import MAPPING, SAMPLE, TEST_KEY, convert

import logmap
from logmap.cli import main
from logmap.errors import InputError, MappingError
from logmap.sources import load_mapping_text

REPO = Path(__file__).resolve().parent.parent
API_KEY = "sk-LOGMAP-CONTRACT-4b1d"


def own_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def test_rejects_file_exists_when_nothing_is_rejected(tmp_path):
    log = tmp_path / "clean.log"
    log.write_text(SAMPLE.read_text().splitlines()[0] + "\n")
    result = convert([str(log)], MAPPING, tmp_path / "out")
    assert result.rejects == 0
    assert (tmp_path / "out/rejects.ndjson").read_bytes() == b""


def test_a_failed_overwrite_leaves_the_previous_output_as_it_was(tmp_path):
    out = tmp_path / "out"
    convert([str(SAMPLE)], MAPPING, out)
    before = own_files(out)
    broken = tmp_path / "broken.log.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    with pytest.raises(InputError):  # the second input fails after the first has been converted
        convert([str(SAMPLE), str(broken)], MAPPING, out, overwrite=True)
    assert own_files(out) == before
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name], "the staging directory was left behind"


def test_overwrite_replaces_the_runs_own_files_and_keeps_the_journal(tmp_path):
    out = tmp_path / "out"
    convert([str(SAMPLE)], MAPPING, out, batch_size=100)
    (out / "upload-journal.ndjson").write_text("{}\n")
    result = convert([str(SAMPLE)], MAPPING, out, batch_size=1000, overwrite=True)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["interactions-00001.ndjson", "rejects.ndjson", "report.json", "upload-journal.ndjson"]
    assert [p.name for p in result.files] == ["interactions-00001.ndjson"] and result.files[0].parent == out


def test_a_non_empty_directory_is_refused_before_anything_is_read(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(logmap.errors.OutputError, match="not empty"):
        convert([str(tmp_path / "missing.log")], MAPPING, tmp_path)
    assert own_files(tmp_path) == {"notes.txt": b"mine"}


def test_upload_from_refuses_a_directory_without_a_finished_report(tmp_path):
    convert([str(SAMPLE)], MAPPING, tmp_path / "out")
    (tmp_path / "out/report.json").unlink()
    with FakeMiso(API_KEY) as api:
        result = CliRunner().invoke(main, ["upload", "--from", str(tmp_path / "out"), "--base-url", api.url],
                                    env={"MISO_API_KEY": API_KEY})
        assert api.stored_keys() == []
    assert result.exit_code == 2 and "report.json is missing" in result.output


def test_a_torn_batch_line_is_named_and_nothing_of_its_batch_is_sent(tmp_path):
    out = tmp_path / "out"
    convert([str(SAMPLE)], MAPPING, out, batch_size=100)
    second = out / "interactions-00002.ndjson"
    lines = second.read_bytes().split(b"\n")
    lines[6] = lines[6][: len(lines[6]) // 2]  # a write cut short
    second.write_bytes(b"\n".join(lines))
    with FakeMiso(API_KEY) as api:
        result = CliRunner().invoke(main, ["upload", "--from", str(out), "--base-url", api.url, "--concurrency", "1",
                                           "--backoff", "0.01"], env={"MISO_API_KEY": API_KEY})
        stored = api.stored_keys("timestamp")
    assert result.exit_code == 2
    assert f"{second}:7: not a complete JSON record" in result.output
    assert len(stored) == 100, "the first batch is sent, nothing of the torn one"


def test_upload_from_inputs_writes_report_and_rejects_like_convert(tmp_path, converted):
    state = tmp_path / "state"
    with FakeMiso(API_KEY) as api:
        result = CliRunner().invoke(main, ["upload", str(SAMPLE), "-m", str(MAPPING), "-o", str(state),
                                           "--base-url", api.url, "-q"],
                                    env={"MISO_API_KEY": API_KEY, "LOGMAP_KEY": TEST_KEY})
        stored = len(api.stored_keys("timestamp"))
    assert result.exit_code == 0, result.output
    report = json.loads((state / "report.json").read_text())
    result, out = converted([str(SAMPLE)], MAPPING)
    assert report["ledger"] == result.ledger.to_dict() and report["ledger"]["balanced"]
    assert stored == report["ledger"]["emitted"]
    assert (state / "rejects.ndjson").read_bytes() == (out / "rejects.ndjson").read_bytes()
    assert report["rejects"] == result.rejects == 5
    assert report["output"]["uploaded"]["sent"] == stored


def test_the_library_takes_the_key_as_a_parameter_and_leaves_the_environment_alone(tmp_path, monkeypatch):
    monkeypatch.delenv("LOGMAP_KEY", raising=False)
    before = dict(os.environ)
    result = logmap.convert([str(SAMPLE)], MAPPING, tmp_path / "out", key="notebook-secret")
    assert result.ledger.balanced and result.ledger.emitted == 248
    assert logmap.test_mapping(MAPPING).failed == []
    assert dict(os.environ) == before
    with pytest.raises(MappingError, match="LOGMAP_KEY is not set"):
        logmap.convert([str(SAMPLE)], MAPPING, tmp_path / "other")
    for secret_holder in (tmp_path / "out/report.json", tmp_path / "out/rejects.ndjson"):
        assert b"notebook-secret" not in secret_holder.read_bytes()


def test_the_library_surface_is_explicit_and_typed():
    for name in ("convert", "dry_run", "upload", "load_mapping", "read_source", "test_mapping"):
        function = getattr(logmap, name)
        assert inspect.isfunction(function), name
        signature = inspect.signature(function)
        assert signature.return_annotation is not inspect.Signature.empty, name
    assert "key" in inspect.signature(logmap.convert).parameters
    assert "api_key" in inspect.signature(logmap.upload).parameters
    assert not hasattr(logmap, "__getattr__")
    assert (REPO / "logmap/py.typed").exists()


def test_read_source_gives_canonical_columns_with_provenance():
    frames = list(logmap.read_source([str(SAMPLE)], MAPPING))
    assert sum(f.height for f in frames) == 406
    assert {"_file", "_line", "_drop", "time", "path", "status"} <= set(frames[0].columns)


@pytest.mark.timeout(20)  # expanded in full, the document below takes minutes and gigabytes
def test_a_yaml_alias_bomb_is_a_one_line_error(tmp_path):
    rows = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for name, previous in zip("bcdefghi", "abcdefgh"):
        rows.append(f"{name}: &{name} [{','.join(['*' + previous] * 9)}]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("logmap: 1\nsource: {format: combined}\n" + "\n".join(rows) + "\n")
    result = CliRunner().invoke(main, ["check", str(bomb)])
    assert result.exit_code == 2
    assert "expands to more than 20,000 values" in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(("section", "line", "column"), [
    ("identity:\n  user_id: '{customer}'\n", 11, 12),
    ("context:\n  custom_context: {plan: '{tier}'}\n", 11, 26),
    ("", 9, 24),
])
def test_an_unknown_field_points_at_its_template(section, line, column):
    text = ("logmap: 1\nsource: {format: combined}\nrules:\n  - name: search\n    path: '^/search'\n"
            "    type: search\n    search:\n      keywords: '{query.q}'\n"
            "      filters: {color: " + ("'{colour}'" if not section else "'{query.c}'") + "}\n" + section)
    mapping = load_mapping_text(text, "m.yaml")
    with pytest.raises(MappingError) as caught:
        logmap.pipeline.stages.Prepared(mapping, key="k")
    assert (caught.value.line, caught.value.column) == (line, column), str(caught.value)
    assert isinstance(caught.value, logmap.errors.UnknownFieldError)
