"""The content store: safe ids and paths, atomic writes, JSON with the .gz fallback."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from signal4.content import store as store_mod
from signal4.content.store import ContentStore, InvalidContentId, check_id


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


@pytest.mark.parametrize("good", ["a", "podcast-ep-1_x.2", "A" * 128])
def test_check_id_accepts_safe_names(good: str) -> None:
    assert check_id(good) == good


@pytest.mark.parametrize(
    "bad", ["", ".", "..", "../x", "a/b", ".hidden", "-x", "a b", "é", "A" * 129, "a\\b"]
)
def test_check_id_refuses_unsafe_names(bad: str) -> None:
    with pytest.raises(InvalidContentId, match="invalid content id"):
        check_id(bad)


def test_path_stays_inside_the_folder(store: ContentStore) -> None:
    assert store.path("c", "chunks", "x.wav") == (store.root / "c" / "chunks" / "x.wav").resolve()
    with pytest.raises(InvalidContentId, match="escapes"):
        store.path("c", "..", "d", "x")
    with pytest.raises(InvalidContentId, match="escapes"):
        store.path("c", "/etc/passwd")
    assert not store.folder("c").exists()
    assert store.folder("c", create=True).is_dir()


def test_open_atomic_renames_only_on_success(store: ContentStore) -> None:
    target = store.path("c", "out.bin")
    with store.open_atomic(target) as fh:
        fh.write(b"partial")
        assert not target.exists()
        assert len(store.leftovers("c")) == 1
    assert target.read_bytes() == b"partial"

    with pytest.raises(RuntimeError), store.open_atomic(target) as fh:
        fh.write(b"new but broken")
        raise RuntimeError("die mid-write")
    assert target.read_bytes() == b"partial"
    assert store.leftovers("c") == []


def test_atomic_files_get_the_umask_mode_not_0600(store: ContentStore) -> None:
    import os

    mask = os.umask(0o027)
    try:
        store_mod._umask.cache_clear()
        a, b = store.path("c", "a.bin"), store.path("c", "b.wav")
        store.write_bytes(a, b"x")
        with store.atomic_path(b) as tmp:
            tmp.write_bytes(b"y")
        assert (a.stat().st_mode & 0o777, b.stat().st_mode & 0o777) == (0o640, 0o640)
        assert store_mod.dir_mode() == 0o750
    finally:
        os.umask(mask)
        store_mod._umask.cache_clear()


def test_atomic_path_for_tools(store: ContentStore) -> None:
    target = store.path("c", "audio.wav")
    with store.atomic_path(target) as tmp:
        assert tmp.parent == target.parent
        assert tmp.suffix == ".wav"
        tmp.write_bytes(b"RIFF")
    assert target.read_bytes() == b"RIFF"
    with pytest.raises(KeyboardInterrupt), store.atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"RIFF"
    assert store.leftovers("c") == []


def test_json_plain_gzip_and_fallback(store: ContentStore) -> None:
    value = {"text": "héllo", "n": [1, 2, 3]}
    plain = store.path("c", "a.json")
    store.write_json(plain, value)
    assert json.loads(plain.read_text(encoding="utf-8")) == value
    assert "héllo" in plain.read_text(encoding="utf-8")  # not \u-escaped

    gz = store.path("c", "b.json.gz")
    store.write_json(gz, value, compress=True)
    assert json.loads(gzip.decompress(gz.read_bytes())) == value
    # the same value compresses to the same bytes (no timestamp in the gzip header)
    first = gz.read_bytes()
    store.write_json(gz, value, compress=True)
    assert gz.read_bytes() == first

    assert store.read_json(store.path("c", "b.json")) == value  # falls back to .gz
    assert store.read_json(plain) == value
    with pytest.raises(FileNotFoundError):
        store.read_json(store.path("c", "missing.json"))


def test_leftovers_of_missing_content(store: ContentStore) -> None:
    assert store.leftovers("never") == []
