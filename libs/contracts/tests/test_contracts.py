"""Golden samples keep parsing; exported schemas and AsyncAPI match the code; names are safe."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from chronoflow_contracts import LATEST, UnknownEventError, decode, encode, names, new_id
from chronoflow_contracts.export import render
from chronoflow_contracts.registry import EVENT_MODELS

GOLDEN = Path(__file__).parent / "golden"
DOCS = Path(__file__).parents[3] / "docs" / "contracts"


def _golden_files() -> list[Path]:
    return sorted(GOLDEN.glob("*.json"))


def test_every_event_type_and_version_has_a_golden_sample() -> None:
    have = {p.name.removesuffix(".json") for p in _golden_files()}
    want = {f"{m.TYPE}.v{m.VERSION}" for m in EVENT_MODELS}
    assert want <= have


@pytest.mark.parametrize("path", _golden_files(), ids=lambda p: p.name)
def test_golden_sample_parses_into_the_latest_model(path: Path) -> None:
    event_type, _, version = path.name.removesuffix(".json").rpartition(".v")
    body = path.read_bytes()
    event = decode(event_type, int(version), body)
    assert isinstance(event, LATEST[event_type])
    # Round trip: what we write is what we read.
    assert decode(event_type, event.VERSION, encode(event)) == event
    # encode skips model_dump_json's str round trip, not a byte of its output.
    assert encode(event) == event.model_dump_json(by_alias=True).encode()
    if int(version) == event.VERSION:
        # The latest version is parsed and validated in one pass: the same event as parsing
        # the JSON first and validating the dict.
        assert event == LATEST[event_type].model_validate(json.loads(body))


def test_wire_format_is_camel_case_with_type_and_version() -> None:
    sample = json.loads((GOLDEN / "run.skipped.v1.json").read_text())
    event = decode("run.skipped", 1, sample)
    wire = json.loads(encode(event))
    assert wire["type"] == "run.skipped"
    assert wire["version"] == 1
    assert "chronoId" in wire
    assert "chrono_id" not in wire


def test_ids_are_uuidv7_carrying_the_creation_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    parsed = [uuid.UUID(text) for text in ids]
    # Canonical text (lowercase, dashed), version 7 and the RFC 9562 variant on every id.
    assert [str(u) for u in parsed] == ids
    assert {u.version for u in parsed} == {7}
    assert {u.variant for u in parsed} == {uuid.RFC_4122}
    stamps = [u.int >> 80 for u in parsed]
    assert before <= stamps[0] <= stamps[-1] <= after
    assert stamps == sorted(stamps)
    # 74 random bits each: no repeats, and the variant digit takes all four of its values.
    assert len(set(ids)) == len(ids)
    assert {text[19] for text in ids} == set("89ab")


def test_unknown_types_and_versions_are_refused_clearly() -> None:
    with pytest.raises(UnknownEventError, match="unknown event type"):
        decode("chrono.exploded", 1, b"{}")
    with pytest.raises(UnknownEventError, match="unknown version 99"):
        decode("chrono.created", 99, b"{}")


def test_exported_schemas_and_asyncapi_match_the_code() -> None:
    expected = render()
    for rel, content in expected.items():
        path = DOCS / rel
        assert path.exists(), f"{path} missing: run `make docs`"
        assert path.read_text() == content, f"{path} drifted from the code: run `make docs`"
    exported = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.json")}
    assert exported == set(expected), "stale exported files: run `make docs` and delete extras"


@pytest.mark.parametrize("bad", ["", "a.b", "a*", "a>", "a b", "x\n"])
def test_subject_builders_refuse_tokens_that_would_split_or_wildcard(bad: str) -> None:
    with pytest.raises(ValueError, match="not a valid subject token"):
        names.aggregate_subject("chrono", bad)


def test_subjects_fall_inside_their_streams() -> None:
    assert names.aggregate_subject("chrono", "x").startswith("cf.events.")
    assert names.runs_subject("x").startswith("cf.runs.")
    assert names.work_subject("http").startswith("cf.work.")
    assert names.schedule_subject("x").startswith("cf.schedules.")
    assert names.schedule_fired_subject("x").startswith("cf.schedules.fired.")
