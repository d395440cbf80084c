"""The napari "Fill holes" widget, headless (Qt's offscreen platform, pytest-qt, a napari ViewerModel).

Skipped cleanly where napari, magicgui, pytest-qt or a Qt binding is missing (CI installs only ``.[dev]``);
run it after ``pip install "pconv-kit[napari]" pytest-qt``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# Before any QApplication exists: no display is needed (a plain `pytest` on a headless machine would abort).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

napari = pytest.importorskip("napari")
pytest.importorskip("magicgui")
pytest.importorskip("pytestqt")
pytest.importorskip("qtpy.QtWidgets")  # raises an ImportError subclass when no Qt binding is installed

from napari.components import ViewerModel  # noqa: E402

from pconv_kit.models import PConvUNet, save_model  # noqa: E402
from pconv_kit.napari import _widget  # noqa: E402
from pconv_kit.napari._widget import WEIGHTS_FILE_CHOICE, FillWidget  # noqa: E402
from pconv_kit.napari.logic import fill_layer_data, shapes_to_holes  # noqa: E402


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.safetensors"
    save_model(PConvUNet(layer_size=3, base_channels=4), path)
    return path


@pytest.fixture
def errors(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The messages the widget shows with napari's show_error."""
    shown: list[str] = []
    monkeypatch.setattr(napari.utils.notifications, "show_error", shown.append)
    return shown


def _viewer_with_image() -> tuple[ViewerModel, np.ndarray]:
    viewer = ViewerModel()
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    viewer.add_image(image, name="photo", rgb=True)
    return viewer, image


def _fill(qtbot, widget: FillWidget, viewer: ViewerModel) -> None:
    count = len(viewer.layers)
    worker = widget.start_fill()
    assert worker is not None
    qtbot.waitUntil(lambda: widget.fill_button.enabled, timeout=60_000)
    assert len(viewer.layers) in (count, count + 1)


def test_fill_with_a_labels_mask_adds_a_layer_and_leaves_the_input(qtbot, weights: Path, errors: list[str]) -> None:
    viewer, image = _viewer_with_image()
    holes = np.zeros((40, 56), np.uint8)
    holes[10:20, 15:40] = 1
    viewer.add_labels(holes, name="holes")
    widget = FillWidget(viewer)
    assert widget.image_combo.value is viewer.layers["photo"]
    assert widget.mask_combo.value is viewer.layers["holes"]
    assert widget.model_combo.value == "pconv-photos-small"  # the built-in model by default
    qtbot.addWidget(widget.native)
    widget.show()
    assert not widget.weights_edit.visible  # the file field shows only for "weights file..."
    widget.model_combo.value = WEIGHTS_FILE_CHOICE
    assert widget.weights_edit.visible
    widget.weights_edit.value = weights
    widget.tta_combo.value = 2
    _fill(qtbot, widget, viewer)
    assert errors == []
    assert [layer.name for layer in viewer.layers] == ["photo", "holes", "photo filled"]
    result = viewer.layers["photo filled"]
    assert result.rgb
    np.testing.assert_array_equal(result.data, fill_layer_data(image, holes, str(weights), tta=2))
    np.testing.assert_array_equal(viewer.layers["photo"].data, image)  # the input is untouched
    assert widget.status.value == "added 'photo filled'"


def test_fill_with_a_shapes_mask(qtbot, weights: Path, errors: list[str]) -> None:
    viewer, image = _viewer_with_image()
    rectangle = np.array([[5.0, 8.0], [5.0, 30.0], [25.0, 30.0], [25.0, 8.0]])
    viewer.add_shapes([rectangle], shape_type="rectangle", name="drawn")
    widget = FillWidget(viewer)
    widget.model_combo.value = WEIGHTS_FILE_CHOICE
    widget.weights_edit.value = weights
    _fill(qtbot, widget, viewer)
    assert errors == []
    filled = viewer.layers["photo filled"].data
    holes = shapes_to_holes([rectangle], ["rectangle"], (40, 56))
    np.testing.assert_array_equal(filled, fill_layer_data(image, holes, str(weights)))
    np.testing.assert_array_equal(filled[~holes], image[~holes])
    assert not np.array_equal(filled[holes], image[holes])


def test_shapes_rasteriser_agrees_with_napari() -> None:
    """Our cv2 rasteriser and napari's own Shapes.to_masks cover nearly the same pixels."""
    shapes = [
        np.array([[5.0, 8.0], [5.0, 50.0], [30.0, 50.0], [30.0, 8.0]]),
        np.array([[10.0, 60.0], [35.0, 90.0], [10.0, 95.0]]),
        np.array([[40.0, 10.0], [40.0, 50.0], [70.0, 50.0], [70.0, 10.0]]),
    ]
    kinds = ["rectangle", "polygon", "ellipse"]
    layer = napari.layers.Shapes(shapes, shape_type=kinds)
    theirs = layer.to_masks(mask_shape=(80, 100))
    for index, kind in enumerate(kinds):
        ours = shapes_to_holes([shapes[index]], [kind], (80, 100))
        overlap = (ours & theirs[index]).sum() / (ours | theirs[index]).sum()
        assert overlap > 0.9, (kind, overlap)


def test_refused_input_is_a_notification_not_an_exception(qtbot, errors: list[str]) -> None:
    viewer, _ = _viewer_with_image()
    widget = FillWidget(viewer)
    assert widget.start_fill() is None
    assert len(errors) == 1 and "mask layer" in errors[0]
    viewer.add_labels(np.ones((10, 10), np.uint8), name="wrong size")
    assert widget.start_fill() is None
    assert "shape" in errors[-1]
    viewer.layers.remove("wrong size")
    viewer.add_labels(np.zeros((40, 56), np.uint8), name="empty")
    widget.model_combo.value = WEIGHTS_FILE_CHOICE  # ... and no file chosen
    assert widget.start_fill() is None
    assert "weights file" in errors[-1]
    assert len(viewer.layers) == 2


def test_errors_in_the_worker_become_notifications(qtbot, tmp_path: Path, errors: list[str]) -> None:
    viewer, _ = _viewer_with_image()
    viewer.add_labels(np.zeros((40, 56), np.uint8), name="nothing painted")
    widget = FillWidget(viewer)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    widget.model_combo.value = WEIGHTS_FILE_CHOICE
    widget.weights_edit.value = broken
    _fill(qtbot, widget, viewer)
    assert len(errors) == 1 and "no hole" in errors[0]  # the empty mask is found in the worker
    viewer.layers["nothing painted"].data[5:10, 5:10] = 1
    _fill(qtbot, widget, viewer)
    assert len(errors) == 2 and "Traceback" not in errors[1]
    assert len(viewer.layers) == 2 and widget.status.value == "fill failed"


def test_run_reports_unexpected_errors_as_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(_widget, "fill_layer_data", broken)
    request = _widget.FillRequest(np.zeros((4, 4)), np.ones((4, 4)), False, None, 1, "auto", "x filled")
    assert _widget._run(request) == (None, "Filling failed (RuntimeError): out of memory")


def test_the_fill_runs_off_the_gui_thread(qtbot, weights: Path, errors: list[str], monkeypatch) -> None:
    import threading

    threads: list[threading.Thread] = []

    def recording(*args, **kwargs):
        threads.append(threading.current_thread())
        assert not widget.fill_button.enabled and widget.progress.visible  # busy while it runs
        return fill_layer_data(*args, **kwargs)

    monkeypatch.setattr(_widget, "fill_layer_data", recording)
    viewer, _ = _viewer_with_image()
    holes = np.zeros((40, 56), np.uint8)
    holes[3:9, 3:9] = 2
    viewer.add_labels(holes, name="holes")
    widget = FillWidget(viewer)
    qtbot.addWidget(widget.native)
    widget.show()
    widget.model_combo.value = WEIGHTS_FILE_CHOICE
    widget.weights_edit.value = weights
    _fill(qtbot, widget, viewer)
    assert errors == [] and len(threads) == 1
    assert threads[0] is not threading.main_thread()
    assert not widget.progress.visible and "photo filled" in viewer.layers
