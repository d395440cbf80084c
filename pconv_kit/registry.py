"""A small registry of named pretrained models, and one loader for names, paths and run directories.

A registered model is a name mapped to a weights file: either a file shipped inside the package
(``file``, relative to the ``pconv_kit`` package folder) or a URL with its SHA-256, fetched once into the cache
by :func:`pconv_kit.utils.download.cached_download` (``$PCONV_KIT_CACHE``, ``PCONV_KIT_OFFLINE=1`` forbids
the network). Adding a model is one :func:`register_model` call; nothing else changes.

The built-in default model, ``pconv-photos-small`` (see the model card in the documentation), ships inside the
package and is what ``load_model(None)`` and ``inpaint(..., model=None)`` use. Checkpoints of other projects can be registered with ``converter=`` (their format): they
are converted by :mod:`pconv_kit.convert` on first use (``mmagic-places2-256`` and ``mmagic-celeba-256`` are
registered this way at the end of this module). A download is verified against the file's full SHA-256; an entry
whose publisher gives only a prefix of it (mmagic's file names) is not downloaded: the user puts the file into the
cache, where the prefix is checked as an identity check.

Example:
    >>> import pathlib, tempfile
    >>> from pconv_kit.models import PConvUNet, save_model
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.safetensors"
    >>> save_model(PConvUNet(layer_size=3, base_channels=4), path)
    >>> load_model(path).required_multiple
    8
    >>> register_model(ModelEntry("tiny-demo", file=str(path), description="a doctest model"))
    >>> "tiny-demo" in list_models()
    True
    >>> load_model("tiny-demo").config["base_channels"]
    4
    >>> unregister_model("tiny-demo")
"""

from __future__ import annotations

import collections
import copy
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

from pconv_kit.errors import InputValueError, WeightsNotFoundError

if TYPE_CHECKING:  # imported in load_model: listing and resolving models needs no torch
    import torch

    from pconv_kit.models import PConvUNet

__all__ = [
    "clear_model_cache",
    "ModelEntry",
    "register_model",
    "unregister_model",
    "list_models",
    "model_info",
    "ModelStatus",
    "model_statuses",
    "default_model_name",
    "resolve_model_path",
    "load_model",
]

_PACKAGE_DIR = Path(__file__).resolve().parent

NO_DEFAULT_MESSAGE = (
    "no default model is registered (the built-in one was unregistered); pass weights explicitly as model: a "
    ".safetensors file or a run directory written by `pconv-kit train`"
)


@dataclass(frozen=True)
class ModelEntry:
    """One registered model.

    Exactly one of ``file`` and ``url`` is set.

    Attributes:
        name: registry name (no path separators), e.g. ``"places2-512"``.
        file: a weights file shipped with the package: a path relative to the ``pconv_kit`` package folder,
            or an absolute path.
        url: where to download the ``.safetensors`` file (``https://`` or ``file://``).
        sha256: the SHA-256 of the file at ``url``. Required with ``url``. The full 64-hex-digit digest
            verifies the download. A prefix of at least 8 hex digits (e.g. from the file name, for files
            whose full digest is not published) cannot verify a download, so such a model is never
            downloaded: the user downloads the file and puts it in the cache, and the prefix is checked as an
            identity check only (see :func:`pconv_kit.utils.download.cached_download`).
        filename: name of the file in the cache (default: the last component of the URL).
        description: one line for ``list_models`` listings.
        license: licence of the weights (and of the data they were trained on, where it matters).
        converter: for a checkpoint of another project: its format, one of ``pconv_kit.convert.SOURCES``
            (e.g. ``"mmagic"``). ``url`` then points to that checkpoint, which is downloaded and converted
            into the cache on first use (:mod:`pconv_kit.convert.cache`). Only with ``url``.
    """

    name: str
    file: str | None = None
    url: str | None = None
    sha256: str | None = None
    filename: str | None = None
    description: str = ""
    license: str = ""
    converter: str | None = None

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or "\\" in self.name or self.name != self.name.strip():
            raise InputValueError(f"model name must be a non-empty word without path separators; got {self.name!r}")
        if (self.file is None) == (self.url is None):
            raise InputValueError(f"model {self.name!r} needs exactly one of file= or url=")
        if self.url is not None and not self.sha256:
            raise InputValueError(f"model {self.name!r} is downloaded from {self.url}; give its sha256= too")
        if self.converter is not None and self.url is None:
            raise InputValueError(f"model {self.name!r}: converter= needs url= (the checkpoint to convert)")


_REGISTRY: dict[str, ModelEntry] = {}
_DEFAULT: str | None = None
_LOCK = threading.Lock()


def register_model(entry: ModelEntry, *, default: bool = False, overwrite: bool = False) -> None:
    """Add ``entry`` to the registry (and make it the default model when ``default``).

    Raises:
        InputValueError: the name is taken and ``overwrite`` is False.
    """
    global _DEFAULT
    with _LOCK:
        if entry.name in _REGISTRY and not overwrite:
            raise InputValueError(f"a model named {entry.name!r} is already registered; pass overwrite=True")
        _REGISTRY[entry.name] = entry
        if default:
            _DEFAULT = entry.name


def unregister_model(name: str) -> None:
    """Remove a registered model (a no-op for unknown names); the default is cleared if it was ``name``."""
    global _DEFAULT
    with _LOCK:
        _REGISTRY.pop(name, None)
        if _DEFAULT == name:
            _DEFAULT = None


def list_models() -> list[str]:
    """Names of the registered models, sorted.

    Example:
        >>> isinstance(list_models(), list)
        True
    """
    with _LOCK:
        return sorted(_REGISTRY)


def model_info(name: str) -> ModelEntry:
    """The :class:`ModelEntry` registered under ``name``.

    Raises:
        WeightsNotFoundError: no model of that name.
    """
    with _LOCK:
        entry = _REGISTRY.get(name)
    if entry is None:
        raise WeightsNotFoundError(_unknown_name_message(name))
    return entry


@dataclass(frozen=True)
class ModelStatus:
    """What a registered model is and whether it is on this machine (see :func:`model_statuses`).

    Attributes:
        name: the registry name.
        default: whether ``model=None`` / no ``--model`` uses it.
        source: ``"built in"`` (shipped in the package), ``"download"`` (verified by its full SHA-256), ``"fetch by
            hand"`` (only a prefix of its SHA-256 is published: the user puts the file into the cache), either with
            ``" + convert (FORMAT)"`` for another project's checkpoint.
        local: the weights file on this machine (the shipped file, or the cached download or conversion), or
            ``None`` while it has not been downloaded.
        size_bytes: the size of ``local``, or ``None``.
        url: where it is downloaded from (``None`` for built-in models).
        description, license: as registered.
    """

    name: str
    default: bool
    source: str
    local: Path | None
    size_bytes: int | None
    url: str | None
    description: str
    license: str


def model_statuses() -> list[ModelStatus]:
    """Every registered model with its source and local state, sorted by name; downloads and checks nothing.

    Example:
        >>> [s.source for s in model_statuses() if s.default]
        ['built in']
    """
    default = default_model_name()
    out = []
    for name in list_models():
        entry = model_info(name)
        local: Path | None
        if entry.file is not None:
            source = "built in"
            local = Path(entry.file) if Path(entry.file).is_absolute() else _PACKAGE_DIR / entry.file
        else:
            from pconv_kit.utils.download import cache_dir

            assert entry.url is not None
            how = "download" if entry.sha256 is not None and len(entry.sha256) == 64 else "fetch by hand"
            if entry.converter is not None:
                from pconv_kit.convert.cache import converted_cache_path

                source = f"{how} + convert ({entry.converter})"
                local = converted_cache_path(entry.name)
            else:
                source = how
                local = cache_dir() / (entry.filename or Path(entry.url).name)
        if not local.is_file():
            local = None
        size = local.stat().st_size if local is not None else None
        out.append(ModelStatus(name, name == default, source, local, size, entry.url, entry.description, entry.license))
    return out


def default_model_name() -> str | None:
    """Name of the default model (used for ``model=None``), or ``None`` when none is registered."""
    with _LOCK:
        return _DEFAULT


def _unknown_name_message(name: str) -> str:
    names = list_models()
    known = ", ".join(names) if names else "none are registered yet"
    return (
        f"{name!r} is neither an existing file or directory nor a registered model name (registered: {known}); "
        "pass a .safetensors file or a run directory written by `pconv-kit train`"
    )


def _entry_path(entry: ModelEntry) -> Path:
    if entry.file is not None:
        path = Path(entry.file)
        if not path.is_absolute():
            path = _PACKAGE_DIR / path
        if not path.is_file():
            raise WeightsNotFoundError(
                f"the weights of the registered model {entry.name!r} are missing: {path} (a broken install?)"
            )
        return path
    from pconv_kit.utils.download import cached_download

    assert entry.url is not None
    if entry.converter is not None:
        from pconv_kit.convert.cache import converted_entry_path

        return converted_entry_path(entry)
    return cached_download(entry.url, sha256=entry.sha256, filename=entry.filename)


def resolve_model_path(name_or_path: str | os.PathLike[str] | None) -> Path:
    """Turn a registered name, a path or ``None`` (the default model) into a local weights path.

    A registered name wins over a same-named file in the working directory (write ``./NAME`` for the file).
    Registered models given by URL are downloaded into the cache on first use.

    Raises:
        WeightsNotFoundError: ``None`` with no default model, an unknown name, a missing path, or a failed
            download.
    """
    if name_or_path is None:
        name = default_model_name()
        if name is None:
            raise WeightsNotFoundError(NO_DEFAULT_MESSAGE, param="model")
        return _entry_path(model_info(name))
    if isinstance(name_or_path, str):
        with _LOCK:
            entry = _REGISTRY.get(name_or_path)
        if entry is not None:
            return _entry_path(entry)
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    text = str(name_or_path)
    looks_like_path = os.sep in text or "/" in text or bool(Path(text).suffix)
    if looks_like_path:
        raise WeightsNotFoundError(f"model weights not found: {path}")
    raise WeightsNotFoundError(_unknown_name_message(text))


_CACHE: collections.OrderedDict[tuple[str, int, int, str], PConvUNet] = collections.OrderedDict()
_CACHE_SIZE = 2  # model files kept in memory, as a model that is never handed out (copied for each caller)


def clear_model_cache() -> None:
    """Forget the model files :func:`load_model` keeps in memory (the next load reads the file again)."""
    with _LOCK:
        _CACHE.clear()


def _cached_template(path: Path, device: torch.device) -> PConvUNet:
    """The model of a weights file, read and checked once per file version and device; callers get copies."""
    from pconv_kit.models.serialization import build_model, read_weights

    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, str(device))
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    config, state = read_weights(path)
    template = build_model(config, state, device, where=path)
    with _LOCK:
        _CACHE[key] = template
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return template


def load_model(
    name_or_path: str | os.PathLike[str] | PConvUNet | None = None, device: str | torch.device = "cpu"
) -> PConvUNet:
    """Load a :class:`~pconv_kit.models.PConvUNet` in eval mode from a name, a path or a run directory.

    The one loader of pconv-kit (``pconv_kit.load_model`` and ``pconv_kit.models.load_model`` are this function).
    It takes a ``.safetensors`` file written by :func:`~pconv_kit.models.save_model` or ``pconv-kit train``, a run
    directory holding ``best.safetensors``/``last.safetensors``, a registered name, or ``None`` for the default
    model. A ``PConvUNet`` instance is returned as is (moved to ``device``).

    Every call returns a new model of its own, so one caller switching it to training mode or changing its
    weights does not touch another's. The last two files are kept in memory as checked models that are never
    handed out (per file version and device): loading the same model again copies one (a few milliseconds)
    instead of reading and checking the file (:func:`clear_model_cache` forgets them).

    Args:
        name_or_path: registered name, path, model, or ``None`` for the default model.
        device: where to put the model.

    Raises:
        WeightsNotFoundError: nothing found under that name or path, or no default model is registered.
        InputValueError: the file is not a pconv-kit model (a pickle, a bad config, tensors that do not fit
            it, or weights that are not finite).

    Example:
        >>> a, b = load_model(None), load_model(None)  # the built-in default model, twice
        >>> a.config["layer_size"], a is b, a.training
        (7, False, False)
    """
    from pconv_kit.models import PConvUNet
    from pconv_kit.models.serialization import resolve_weights_path

    if isinstance(name_or_path, PConvUNet):
        return name_or_path.to(device)
    if name_or_path is not None and not isinstance(name_or_path, (str, os.PathLike)):
        raise InputValueError(
            f"model must be a PConvUNet, a path, a registered name or None; got {type(name_or_path).__name__}",
            param="model",
        )
    import torch

    path = resolve_weights_path(resolve_model_path(name_or_path))
    return copy.deepcopy(_cached_template(path, torch.device(device)))  # a few ms, a tenth of building one


# ---------------------------------------------------------------------------------------------- registered models
# Built-in and community checkpoints are registered here, one call each, for example
#     register_model(ModelEntry("places2-512", url="https://.../places2-512.safetensors", sha256="<sha256>",
#                               description="...", license="..."), default=True)
# The built-in default model: trained by pconv-kit on 43 natural photos (docs/model_card.md, tools/builtin_model/).
BUILTIN_MODEL = "pconv-photos-small"
register_model(
    ModelEntry(
        BUILTIN_MODEL,
        file="weights/pconv-photos-small.safetensors",
        description="PConvUNet(layer_size=7, base_channels=24, refine_channels=16), 3.6 M parameters, trained by "
        "pconv-kit on 43 natural photos with thin, wide, box and object-shaped holes, pixel and SSIM losses; any "
        "image size (padded to multiples of 128)",
        license="weights Apache-2.0 (pconv-kit); trained on photos from Debian packages and Python wheels, each "
        "under its package's licence (docs/model_card.md)",
    ),
    default=True,
)


# ---------------------------------------------------------------------------------- community checkpoints (convert)
# Checkpoints published by other projects, converted by pconv_kit.convert on first use; see docs/convert.md. mmagic's
# file names end in the first 8 hex digits of the file's SHA-256 (tools/model_converters/publish_model.py) and no
# full digest is published, so these entries give that prefix: they are not downloaded automatically (a prefix
# cannot verify a download); the user downloads the file into the cache, where the prefix is checked as an identity
# check. None of them is the default.
_MMAGIC_PCONV = "https://download.openmmlab.com/mmediting/inpainting/pconv/"
register_model(
    ModelEntry(
        "mmagic-places2-256",
        url=_MMAGIC_PCONV + "pconv_256x256_stage2_4x2_places_20200619-1ffed0e8.pth",
        sha256="1ffed0e8",
        converter="mmagic",
        description="OpenMMLab mmediting PConv (7 layers, stage 2) trained on Places365 at 256x256; download it "
        "yourself into the cache, it is converted on first use; inputs need sides divisible by 128",
        license="published in the model zoo of the Apache-2.0 mmagic repository; trained on Places365, whose "
        "images are for non-commercial research and education",
    )
)
register_model(
    ModelEntry(
        "mmagic-celeba-256",
        url=_MMAGIC_PCONV + "pconv_256x256_stage2_4x2_celeba_20200619-860f8b95.pth",
        sha256="860f8b95",
        converter="mmagic",
        description="OpenMMLab mmediting PConv (7 layers, stage 2) trained on CelebA faces at 256x256; download it "
        "yourself into the cache, it is converted on first use; inputs need sides divisible by 128",
        license="published in the model zoo of the Apache-2.0 mmagic repository; trained on CelebA, whose images "
        "are for non-commercial research only",
    )
)
