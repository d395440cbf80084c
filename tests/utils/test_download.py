"""Tests of pconv_kit.utils.download against file:// URLs and a local http.server on 127.0.0.1."""

from __future__ import annotations

import functools
import hashlib
import http.server
import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pconv_kit.errors import ChecksumError, InputValueError, WeightsNotFoundError
from pconv_kit.utils import DownloadError, cache_dir, cached_download, download_url, sha256_file
from pconv_kit.utils.download import NotDownloadableError, sha256_matches, sha256_prefix_matches

PAYLOAD = random.Random(0).randbytes(3 * (1 << 20) + 123)  # a little over three 1 MiB chunks, the same every run
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """Serves ``root`` on 127.0.0.1 and counts GET requests per path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hits: dict[str, int] = {}
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                if self.path == "/truncated.bin":  # announce more bytes than are sent
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b"x" * 10)
                    self.close_connection = True
                    return
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def served(tmp_path: Path) -> Path:
    root = tmp_path / "served"
    root.mkdir()
    (root / "weights.bin").write_bytes(PAYLOAD)
    return root


@pytest.fixture
def server(served: Path) -> Iterator[Server]:
    s = Server(served)
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("PCONV_KIT_CACHE", str(cache))
    monkeypatch.delenv("PCONV_KIT_OFFLINE", raising=False)
    return cache


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_http_download_verifies_the_full_hash(server: Server, tmp_path: Path):
    dest = tmp_path / "out" / "a.bin"  # parent folder is created
    assert download_url(server.url("weights.bin"), dest, sha256=DIGEST) == dest
    assert dest.read_bytes() == PAYLOAD
    dest2 = download_url(server.url("weights.bin"), tmp_path / "b.bin", sha256=DIGEST.upper())
    assert dest2.read_bytes() == PAYLOAD
    assert download_url(server.url("weights.bin"), tmp_path / "c.bin", progress=True).read_bytes() == PAYLOAD
    assert sha256_file(dest) == DIGEST
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["b.bin", "c.bin"]  # no temp files


def test_file_url(served: Path, tmp_path: Path):
    dest = download_url((served / "weights.bin").as_uri(), tmp_path / "w.bin", sha256=DIGEST)
    assert dest.read_bytes() == PAYLOAD


@pytest.mark.parametrize(
    "expected", ["0" * 64, DIGEST[:63] + ("0" if DIGEST[-1] != "0" else "1")], ids=["zeros", "last-digit-off"]
)
def test_checksum_mismatch_leaves_nothing(server: Server, tmp_path: Path, expected: str):
    out = tmp_path / "out"
    with pytest.raises(ChecksumError) as info:
        download_url(server.url("weights.bin"), out / "w.bin", sha256=expected)
    assert expected in str(info.value) and DIGEST in str(info.value)
    assert list(out.iterdir()) == []


def test_checksum_mismatch_keeps_existing_file(server: Server, tmp_path: Path):
    (tmp_path / "out").mkdir()
    dest = tmp_path / "out" / "w.bin"
    dest.write_bytes(b"previous")
    with pytest.raises(ChecksumError):
        download_url(server.url("weights.bin"), dest, sha256="0" * 64)
    assert dest.read_bytes() == b"previous"
    assert [p.name for p in dest.parent.iterdir()] == ["w.bin"]


def test_cached_download_reuses_the_cache(server: Server, _cache: Path):
    url = server.url("weights.bin")
    path = cached_download(url, sha256=DIGEST)
    assert path == _cache / "weights.bin" and path.read_bytes() == PAYLOAD
    assert cached_download(url, sha256=DIGEST) == path
    assert cached_download(url) == path
    assert server.hits == {"/weights.bin": 1}
    # a corrupted cached file fails the hash check and is downloaded again
    path.write_bytes(b"corrupt")
    assert cached_download(url, sha256=DIGEST).read_bytes() == PAYLOAD
    assert server.hits == {"/weights.bin": 2}
    # explicit cache file name
    named = cached_download(url, filename="renamed.bin")
    assert named == _cache / "renamed.bin" and server.hits == {"/weights.bin": 3}


def test_cache_dir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server: Server):
    other = tmp_path / "elsewhere"
    monkeypatch.setenv("PCONV_KIT_CACHE", str(other))
    assert cache_dir() == other
    assert cached_download(server.url("weights.bin")).parent == other
    monkeypatch.delenv("PCONV_KIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "pconv-kit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "pconv-kit"


def test_network_errors(server: Server, tmp_path: Path):
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download_url(server.url("absent.bin"), tmp_path / "x.bin")
    assert isinstance(info.value, WeightsNotFoundError) and info.value.url == server.url("absent.bin")
    with pytest.raises(WeightsNotFoundError, match="could not download"):
        download_url(f"http://127.0.0.1:{_closed_port()}/w.bin", tmp_path / "x.bin", timeout=5)
    with pytest.raises(DownloadError, match="truncated"):
        download_url(server.url("truncated.bin"), tmp_path / "x.bin")
    with pytest.raises(DownloadError):
        download_url((tmp_path / "absent.bin").as_uri(), tmp_path / "x.bin")
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == []  # neither x.bin nor a temporary file


def test_offline_mode_blocks_network_only(monkeypatch: pytest.MonkeyPatch, server: Server, served: Path, tmp_path: Path):
    monkeypatch.setenv("PCONV_KIT_OFFLINE", "1")
    with pytest.raises(DownloadError, match="PCONV_KIT_OFFLINE"):
        cached_download(server.url("weights.bin"))
    assert server.hits == {}
    assert download_url((served / "weights.bin").as_uri(), tmp_path / "w.bin").read_bytes() == PAYLOAD


def test_argument_errors(tmp_path: Path, served: Path):
    url = (served / "weights.bin").as_uri()
    for bad in ["xyz", "1234567", "0" * 65, "g" * 64]:
        with pytest.raises(InputValueError, match="sha256"):
            download_url(url, tmp_path / "w.bin", sha256=bad)
        with pytest.raises(InputValueError, match="sha256"):
            cached_download(url, sha256=bad)
    with pytest.raises(InputValueError, match="URL"):
        download_url("weights.bin", tmp_path / "w.bin")
    with pytest.raises(InputValueError, match="filename"):
        cached_download("http://127.0.0.1/")


@pytest.mark.parametrize("prefix", [DIGEST[:8], DIGEST[:8].upper(), DIGEST[:63]])
def test_a_prefix_cannot_verify_a_download(server: Server, tmp_path: Path, prefix: str):
    with pytest.raises(InputValueError, match="full SHA-256") as info:
        download_url(server.url("weights.bin"), tmp_path / "w.bin", sha256=prefix)
    assert "prefix" in str(info.value) and "pass its path" in str(info.value)
    assert server.hits == {} and not (tmp_path / "w.bin").exists()


def test_a_prefix_entry_is_never_downloaded_but_a_file_put_in_the_cache_is_identity_checked(
    server: Server, _cache: Path
):
    url = server.url("weights.bin")
    with pytest.raises(NotDownloadableError) as info:
        cached_download(url, sha256=DIGEST[:8])
    assert isinstance(info.value, DownloadError) and isinstance(info.value, WeightsNotFoundError)
    message = str(info.value)
    assert str(_cache / "weights.bin") in message and url in message and DIGEST[:8] in message
    assert "identity check" in message
    assert info.value.path == _cache / "weights.bin" and info.value.prefix == DIGEST[:8]
    assert server.hits == {}  # nothing was downloaded
    # the user downloads the file and puts it in the cache: it is returned after the prefix check
    _cache.mkdir(parents=True, exist_ok=True)
    (_cache / "weights.bin").write_bytes(PAYLOAD)
    assert cached_download(url, sha256=DIGEST[:8].upper()) == _cache / "weights.bin"
    # a different file under that name is refused, and left for the user to replace
    (_cache / "weights.bin").write_bytes(b"another file")
    with pytest.raises(ChecksumError, match=f"does not start with {DIGEST[:8]}"):
        cached_download(url, sha256=DIGEST[:8])
    assert (_cache / "weights.bin").read_bytes() == b"another file" and server.hits == {}


def test_digest_helpers():
    assert sha256_matches(DIGEST.upper(), DIGEST) and not sha256_matches(DIGEST, "0" * 64)
    with pytest.raises(InputValueError, match="full SHA-256"):
        sha256_matches(DIGEST, DIGEST[:8])
    assert sha256_prefix_matches(DIGEST, DIGEST[:8].upper()) and sha256_prefix_matches(DIGEST, DIGEST)
    assert not sha256_prefix_matches(DIGEST, "0" * 8)
