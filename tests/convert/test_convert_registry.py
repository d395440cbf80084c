"""Registered community checkpoints: download (hash-checked) or provided by hand, convert on first use, reuse, errors.

Nothing is downloaded from the internet: the registered entries are pointed at small synthetic checkpoints
served from file:// URLs or a local http.server on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tests.convert.test_convert import mmagic_reference, mmagic_state, random_inputs

from pconv_kit.convert import convert_checkpoint
from pconv_kit.convert.cache import converted_cache_path
from pconv_kit.errors import ChecksumError, InputValueError, WeightsNotFoundError
from pconv_kit.utils.download import NotDownloadableError
from pconv_kit.registry import ModelEntry, default_model_name, list_models, load_model, model_info, register_model

NAMES = ("mmagic-places2-256", "mmagic-celeba-256")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PCONV_KIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("PCONV_KIT_OFFLINE", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def restore_entries() -> Iterator[None]:
    original = {name: model_info(name) for name in NAMES}
    try:
        yield
    finally:
        for entry in original.values():
            register_model(entry, overwrite=True)


def published_checkpoint(path: Path) -> str:
    """Write a small mmagic checkpoint like the published ones (legacy format, meta + state_dict); its SHA-256."""
    state = {k: v.float() for k, v in mmagic_state(3, 4, seed=5).items()}
    torch.save({"meta": {"iter": 500000, "mmedit_version": "0.1.0"}, "state_dict": state}, path,
               _use_new_zipfile_serialization=False)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_registered_entries() -> None:
    assert set(NAMES) <= set(list_models())
    assert default_model_name() not in NAMES  # community checkpoints are never the default
    for name in NAMES:
        entry = model_info(name)
        assert entry.converter == "mmagic" and entry.url is not None and entry.url.startswith("https://download.openmmlab.com/")
        # OpenMMLab's file names end in the first 8 hex digits of the file's SHA-256
        match = re.search(r"-([0-9a-f]{8})\.pth$", entry.url)
        assert match and entry.sha256 == match.group(1)
        assert entry.description and entry.license
    with pytest.raises(InputValueError, match="converter= needs url="):
        ModelEntry("x", file="w.safetensors", converter="mmagic")


def test_download_and_convert_on_first_use(tmp_path: Path, cache: Path, restore_entries: None) -> None:
    src = tmp_path / "pconv_256x256_stage2_4x2_places_20200619-00000000.pth"
    digest = published_checkpoint(src)
    entry = dataclasses.replace(model_info("mmagic-places2-256"), url=src.as_uri(), sha256=digest, filename=src.name)
    register_model(entry, overwrite=True)

    model = load_model("mmagic-places2-256")
    converted = converted_cache_path("mmagic-places2-256")
    assert converted == cache / "converted" / "mmagic-places2-256.safetensors" and converted.is_file()
    assert (cache / src.name).is_file()  # the original, hash-checked
    expected, _ = convert_checkpoint(src)
    assert model.config == expected.config
    image, mask = random_inputs(3, 16)
    torch.testing.assert_close(
        model(image.float(), mask.float())[0],
        mmagic_reference(mmagic_state(3, 4, seed=5), image, mask, 3).float(),
        rtol=1e-4,
        atol=1e-4,
    )

    # second use: the converted file is reused, even without the original and its URL
    src.unlink()
    (cache / src.name).unlink()
    again = load_model("mmagic-places2-256")
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))

    # a different published checksum makes the cached conversion stale: it is redone, which needs the file
    register_model(dataclasses.replace(entry, sha256="0123abcd" * 8), overwrite=True)
    with pytest.raises(WeightsNotFoundError, match="could not be downloaded"):
        load_model("mmagic-places2-256")


@functools.lru_cache(maxsize=None)
def _handler(directory: str) -> type[http.server.SimpleHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=directory, **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    return Handler


def test_download_over_http_and_checksum(tmp_path: Path, cache: Path, restore_entries: None) -> None:
    served = tmp_path / "served"
    served.mkdir()
    name = "pconv_256x256_stage2_4x2_celeba_20200619-00000000.pth"
    digest = published_checkpoint(served / name)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{name}"
        entry = dataclasses.replace(model_info("mmagic-celeba-256"), url=url, sha256="f" * 64)
        register_model(entry, overwrite=True)
        with pytest.raises(ChecksumError, match="SHA-256 mismatch"):
            load_model("mmagic-celeba-256")
        assert not converted_cache_path("mmagic-celeba-256").exists()
        register_model(dataclasses.replace(entry, sha256=digest), overwrite=True)
        model = load_model("mmagic-celeba-256")
        assert model.config["layer_size"] == 3 and model.config["mean"] == [0.5, 0.5, 0.5]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_offline_error_is_clear(cache: Path, monkeypatch: pytest.MonkeyPatch, restore_entries: None) -> None:
    monkeypatch.setenv("PCONV_KIT_OFFLINE", "1")
    name = "pconv_256x256_stage2_4x2_places_20200619-1ffed0e8.pth"
    entry = dataclasses.replace(model_info("mmagic-places2-256"), sha256="1ffed0e8" + "0" * 56)  # as if published
    register_model(entry, overwrite=True)
    with pytest.raises(WeightsNotFoundError) as info:
        load_model("mmagic-places2-256")
    message = str(info.value)
    assert "mmagic-places2-256" in message and entry.url in message
    assert "PCONV_KIT_OFFLINE" in message and "offline" in message
    assert f"pconv_kit.convert.convert('{name}', 'mmagic-places2-256.safetensors', source='mmagic')" in message
    assert str(cache / name) in message and entry.sha256 in message
    assert not (cache / "converted").exists()


def test_the_published_mmagic_checkpoints_are_not_downloaded(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # only the 8-digit prefix in the file name is published: no download, even online, and the message says why
    monkeypatch.setattr("urllib.request.urlopen", _no_network)
    for model_name in NAMES:
        entry = model_info(model_name)
        name = entry.url.rsplit("/", 1)[-1]
        with pytest.raises(NotDownloadableError) as info:
            load_model(model_name)
        message = str(info.value)
        assert isinstance(info.value, WeightsNotFoundError)
        assert entry.url in message and str(cache / name) in message and entry.sha256 in message
        assert "not downloaded automatically" in message and "identity check" in message
        assert f"pconv_kit.convert.convert('{name}', '{model_name}.safetensors', source='mmagic')" in message
    assert not cache.exists() or not any(cache.rglob("*.pth"))


def _no_network(*args: object, **kwargs: object) -> None:
    raise AssertionError("a prefix-only entry must not be downloaded")


def test_a_prefix_entry_converts_a_file_the_user_put_in_the_cache(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, restore_entries: None
) -> None:
    monkeypatch.setattr("urllib.request.urlopen", _no_network)
    name = "pconv_256x256_stage2_4x2_places_20200619-00000000.pth"
    cache.mkdir()
    digest = published_checkpoint(cache / name)  # downloaded by hand into the cache
    entry = dataclasses.replace(
        model_info("mmagic-places2-256"), url=f"https://example.invalid/{name}", sha256=digest[:8], filename=name
    )
    register_model(entry, overwrite=True)
    assert load_model("mmagic-places2-256").config["layer_size"] == 3
    assert converted_cache_path("mmagic-places2-256").is_file()
    # a file that is not the named one is refused (identity check), and nothing is converted from it
    converted_cache_path("mmagic-places2-256").unlink()
    (cache / name).write_bytes(b"not the checkpoint")
    with pytest.raises(ChecksumError, match=f"does not start with {digest[:8]}"):
        load_model("mmagic-places2-256")
    assert not converted_cache_path("mmagic-places2-256").exists()


def test_unreachable_server_error(cache: Path, restore_entries: None) -> None:
    # a port on 127.0.0.1 with nothing listening: the connection is refused at once
    entry = dataclasses.replace(model_info("mmagic-celeba-256"), url="http://127.0.0.1:9/pconv.pth", sha256="0" * 64)
    register_model(entry, overwrite=True)
    with pytest.raises(WeightsNotFoundError, match="could not be downloaded .*convert.convert\\('pconv.pth'"):
        load_model("mmagic-celeba-256")
