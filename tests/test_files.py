"""Resolution order of upstream files: explicit path, mirror, cache, checksummed download."""
import hashlib
import http.server
import threading

import pytest

from convdr_pyserini import files
from convdr_pyserini.errors import UserError

NAME = "cast-20/2020qrels.txt"


def test_every_declared_file_is_in_the_mirror_with_its_checksum(shared_data):
    for entry in files.manifest().values():
        if entry.user_supplied:
            assert entry.sha256 is None
            continue
        assert entry.url.startswith("https://raw.githubusercontent.com/") and entry.size > 0
        assert files.sha256_of(shared_data / entry.name) == entry.sha256, entry.name


def test_explicit_path_wins(tmp_path):
    explicit = tmp_path / "mine.txt"
    explicit.write_text("x")
    assert files.resolve(NAME, explicit) == explicit
    with pytest.raises(UserError, match="does not exist"):
        files.resolve(NAME, tmp_path / "nope.txt")


def test_mirror_then_cache(tmp_path, monkeypatch, shared_data):
    assert files.resolve(NAME) == shared_data / NAME
    monkeypatch.setenv("CONVDR_PYSERINI_MIRROR", str(tmp_path / "empty"))
    monkeypatch.setenv("CONVDR_PYSERINI_HOME", str(tmp_path / "home"))
    cached = tmp_path / "home" / "data" / NAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes((shared_data / NAME).read_bytes())
    assert files.resolve(NAME) == cached


def test_checksum_mismatch_is_refused(tmp_path, monkeypatch, shared_data):
    corrupt = tmp_path / "home" / "data" / NAME
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes((shared_data / NAME).read_bytes().replace(b"81_1", b"81_2", 1))
    monkeypatch.setenv("CONVDR_PYSERINI_MIRROR", str(tmp_path / "empty"))
    monkeypatch.setenv("CONVDR_PYSERINI_HOME", str(tmp_path / "home"))
    with pytest.raises(UserError, match=r"has sha256 [0-9a-f]{64}, expected 184255be.*refusing to use it"):
        files.resolve(NAME)


def test_missing_file_offline_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVDR_PYSERINI_MIRROR", str(tmp_path / "empty"))
    monkeypatch.setenv("CONVDR_PYSERINI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CONVDR_PYSERINI_OFFLINE", "1")
    entry = files.declared(NAME)
    with pytest.raises(UserError) as error:
        files.resolve(NAME)
    message = str(error.value)
    assert entry.url in message and entry.sha256 in message and str(tmp_path / "home" / "data" / NAME) in message


def test_user_supplied_file_names_its_source(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVDR_PYSERINI_MIRROR", str(tmp_path / "empty"))
    monkeypatch.setenv("CONVDR_PYSERINI_HOME", str(tmp_path / "home"))
    with pytest.raises(UserError, match=r"orquac/all_blocks.txt not found: obtain it from https://ciir"):
        files.resolve("orquac/all_blocks.txt")


class _Server:
    """Serve one folder on localhost for the download path."""

    def __init__(self, folder):
        handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(folder), **k)  # noqa: E731
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.mark.parametrize("tamper", [False, True])
def test_download_verifies_checksum_and_renames_atomically(tmp_path, monkeypatch, tamper):
    served = tmp_path / "served"
    served.mkdir()
    payload = b"81_1 0 MARCO_1 1\n"
    (served / "q.txt").write_bytes(payload + (b"tampered" if tamper else b""))
    server = _Server(served)
    entry = files.DataFile(NAME, f"{server.url}/q.txt", hashlib.sha256(payload).hexdigest(), len(payload))
    monkeypatch.setattr(files, "manifest", lambda: {NAME: entry})
    monkeypatch.setenv("CONVDR_PYSERINI_MIRROR", str(tmp_path / "empty"))
    monkeypatch.setenv("CONVDR_PYSERINI_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CONVDR_PYSERINI_OFFLINE")
    target = tmp_path / "home" / "data" / NAME
    try:
        if tamper:
            with pytest.raises(UserError, match="expected .* not used"):
                files.resolve(NAME)
            assert not target.exists()
            assert list(target.parent.iterdir()) == []
        else:
            assert files.resolve(NAME) == target and target.read_bytes() == payload
    finally:
        server.httpd.shutdown()


def test_the_cache_is_in_the_users_xdg_cache_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("CONVDR_PYSERINI_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert files.home() == tmp_path / "xdg" / "convdr_pyserini"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # the XDG spec says to ignore a relative path
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert files.home() == tmp_path / "user" / ".cache" / "convdr_pyserini"
    monkeypatch.setenv("CONVDR_PYSERINI_HOME", str(tmp_path / "own"))
    assert files.home() == tmp_path / "own"
