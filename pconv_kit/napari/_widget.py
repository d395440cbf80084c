"""The "Fill holes" dock widget (needs napari, magicgui and a Qt binding: ``pip install "pconv-kit[napari]"``).

The widget collects an image layer, a mask layer (Labels: non-zero = hole; Shapes: covered pixels = hole),
a model and options, and runs :func:`pconv_kit.napari.logic.fill_layer_data` in a worker thread. The result is
added as a new image layer; the input layers are not changed. Errors are shown as napari notifications.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, Label, ProgressBar, PushButton

from pconv_kit.errors import PConvKitError
from pconv_kit.napari.logic import fill_layer_data, image_size, labels_to_holes, shapes_to_holes

if TYPE_CHECKING:
    import napari

__all__ = ["FillWidget", "FillRequest", "WEIGHTS_FILE_CHOICE"]

WEIGHTS_FILE_CHOICE = "weights file..."
"""The entry of the model list that uses the file chosen in the "weights" field instead of a registered model."""

_LOG = logging.getLogger(__name__)


@dataclass
class FillRequest:
    """Everything a fill needs, copied from the layers on the GUI thread before the worker starts."""

    image: np.ndarray
    holes: np.ndarray
    rgb: bool
    model: str | None
    tta: int
    strategy: str
    name: str


def _layer_holes(mask_layer: Any, image_layer: Any, size: tuple[int, int]) -> np.ndarray:
    """A Labels or Shapes layer as an ``(H, W)`` bool hole mask in the image layer's pixel grid."""
    from napari.layers import Labels, Shapes

    if isinstance(mask_layer, Labels):
        return labels_to_holes(np.asarray(mask_layer.data), size)
    if isinstance(mask_layer, Shapes):
        vertices = []
        for shape in mask_layer.data:  # shapes layer data coordinates -> world -> image data coordinates
            points = np.asarray(shape, dtype=np.float64)
            world = np.array([mask_layer.data_to_world(p) for p in points])
            vertices.append(np.array([image_layer.world_to_data(p) for p in world])[:, -2:])
        return shapes_to_holes(vertices, list(mask_layer.shape_type), size, list(mask_layer.edge_width))
    raise PConvKitError(f"the mask must be a Labels or Shapes layer; got {type(mask_layer).__name__}")


def _run(request: FillRequest) -> tuple[np.ndarray | None, str | None]:
    """The worker's job: ``(result, None)``, or ``(None, message)`` for any error (no traceback reaches the GUI)."""
    try:
        result = fill_layer_data(
            request.image, request.holes, request.model, rgb=request.rgb, tta=request.tta, strategy=request.strategy
        )
    except PConvKitError as exc:
        return None, str(exc)
    except Exception as exc:  # a bug or an environment problem: keep the traceback in the log, not on screen
        _LOG.exception("pconv-kit fill failed")
        return None, f"Filling failed ({type(exc).__name__}): {exc}"
    return result, None


class FillWidget(Container):
    """Fill the holes of an image layer with a partial-convolution model.

    Args:
        napari_viewer: the viewer whose layers are offered (napari passes it when it opens the widget).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        from pconv_kit.inpaint import STRATEGIES
        from pconv_kit.registry import default_model_name, list_models

        self._viewer = napari_viewer
        self._worker: Any = None
        models = list_models()
        default = default_model_name()
        self.image_combo = ComboBox(label="image", choices=self._image_choices, nullable=True,
                                    tooltip="the image layer to fill: grey, RGB or RGBA, any size")
        self.mask_combo = ComboBox(label="mask (holes)", choices=self._mask_choices, nullable=True,
                                   tooltip="a Labels layer (non-zero = hole, paint with the brush) or a Shapes "
                                   "layer (pixels inside rectangles, polygons and ellipses, or under paths, "
                                   "are holes)")
        self.model_combo = ComboBox(label="model", choices=[*models, WEIGHTS_FILE_CHOICE],
                                    value=default if default in models else WEIGHTS_FILE_CHOICE,
                                    tooltip="a registered model (the built-in one by default) or a weights file")
        self.weights_edit = FileEdit(label="weights", mode="r", filter="*.safetensors",
                                     tooltip="a .safetensors file or a `pconv-kit train` run directory")
        self.tta_combo = ComboBox(label="test-time aug.", choices=[("off", 1), ("x2 (mirror)", 2), ("x4 (flips)", 4)],
                                  value=1, tooltip="average the fills of 1, 2 or 4 mirrored copies (slower, smoother)")
        self.strategy_combo = ComboBox(label="large images", choices=list(STRATEGIES), value="auto",
                                       tooltip="auto: whole image up to 2 MP, crops around the holes above")
        self.fill_button = PushButton(text="Fill")
        self.progress = ProgressBar(min=0, max=0, visible=False, label="")
        self.status = Label(value="")
        super().__init__(
            widgets=[self.image_combo, self.mask_combo, self.model_combo, self.weights_edit, self.tta_combo,
                     self.strategy_combo, self.fill_button, self.progress, self.status],
        )
        self.weights_edit.visible = self.model_combo.value == WEIGHTS_FILE_CHOICE
        self.model_combo.changed.connect(self._on_model_changed)
        self.fill_button.changed.connect(self.start_fill)
        for event in ("inserted", "removed", "reordered"):
            getattr(self._viewer.layers.events, event).connect(self._refresh_layers)
        self._refresh_layers()

    # ------------------------------------------------------------------------------------------ choices

    def _image_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        from napari.layers import Image

        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Image)]

    def _mask_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        from napari.layers import Labels, Shapes

        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, (Labels, Shapes))]

    def _refresh_layers(self, _event: Any = None) -> None:
        for combo, options in ((self.image_combo, self._image_choices), (self.mask_combo, self._mask_choices)):
            combo.reset_choices()
            layers = [layer for _, layer in options()]
            if combo.value is None and layers:  # preselect the newest layer of the right kind
                combo.value = layers[-1]

    def _on_model_changed(self, value: str) -> None:
        self.weights_edit.visible = value == WEIGHTS_FILE_CHOICE

    # ------------------------------------------------------------------------------------------ filling

    def request(self) -> FillRequest:
        """Copy the chosen layers' data and options into a :class:`FillRequest` (on the GUI thread).

        Raises:
            PConvKitError: no image or mask chosen, no weights file given, or mask and image do not match.
        """
        image_layer, mask_layer = self.image_combo.value, self.mask_combo.value
        if image_layer is None:
            raise PConvKitError("choose an image layer to fill (open an image, or File > Open Sample)")
        if mask_layer is None:
            raise PConvKitError("choose a mask layer: add a Labels layer and paint the holes, or a Shapes layer")
        if image_layer.multiscale:
            raise PConvKitError(f"{image_layer.name!r} is a multiscale image; fill a single-resolution image")
        image = np.asarray(image_layer.data)
        size = image_size(image, bool(image_layer.rgb))
        holes = _layer_holes(mask_layer, image_layer, size)
        model: str | None = self.model_combo.value
        if model == WEIGHTS_FILE_CHOICE:
            path = self.weights_edit.value
            if path is None or str(path) in ("", ".") or not Path(path).exists():
                raise PConvKitError("choose a weights file (.safetensors) or a training run directory")
            model = str(path)
        return FillRequest(image=image, holes=holes, rgb=bool(image_layer.rgb), model=model,
                           tta=int(self.tta_combo.value), strategy=str(self.strategy_combo.value),
                           name=f"{image_layer.name} filled")

    def start_fill(self, _value: Any = None) -> Any:
        """Start filling in a worker thread; returns the worker (``None`` when the input was refused)."""
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error

        if self._worker is not None:
            return None
        try:
            request = self.request()
        except PConvKitError as exc:
            show_error(str(exc))
            return None
        source = self.image_combo.value
        self._set_busy(True, f"filling {source.name!r}...")
        worker = create_worker(_run, request, _progress={"desc": "pconv-kit: filling holes"})
        worker.returned.connect(lambda outcome: self._on_done(request, source, *outcome))
        worker.finished.connect(lambda: self._set_busy(False))
        self._worker = worker
        worker.start()
        return worker

    def _set_busy(self, busy: bool, message: str = "") -> None:
        if not busy:
            self._worker = None
        self.fill_button.enabled = not busy
        self.progress.visible = busy
        if message or busy:
            self.status.value = message

    def _on_done(self, request: FillRequest, source: Any, result: np.ndarray | None, error: str | None) -> None:
        from napari.utils.notifications import show_error

        if error is not None or result is None:
            self.status.value = "fill failed"
            show_error(error or "filling failed")
            return
        self._viewer.add_image(
            result, name=request.name, rgb=request.rgb, scale=source.scale, translate=source.translate,
            rotate=source.rotate, shear=source.shear, affine=source.affine.affine_matrix,
            colormap=None if request.rgb else source.colormap, contrast_limits=source.contrast_limits,
            metadata={"pconv_kit": {"source": source.name, "model": request.model or "built-in", "tta": request.tta}},
        )
        self.status.value = f"added {request.name!r}"
