"""The plugin's dock widgets (Qt): review and correct, segment, measure. Thin: the work is in
layer_data, review, segmenting and measure, which know nothing of Qt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from napari.layers import Image, Labels, Layer
from napari.qt.threading import thread_worker
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from socseg_jax.core import dataset_layout
from socseg_jax.core.errors import UserError
from socseg_jax.core.phases import CLASS_NAMES
from socseg_jax.inference.outputs import UNCERTAINTY_FIELDS
from socseg_jax.inference.windows import TTA_TRANSFORMS
from socseg_jax.napari import layer_data, measure, review, segmenting


def _facts(layer: Layer) -> dict[str, Any]:
    return layer.metadata.get("socseg", {})


def _pixel_size_nm(layer: Layer) -> float | None:
    """The layer's pixel size (its scale is in µm; 1 means unknown, as layer_data sets it)."""
    return layer_data.pixel_size_nm_of(layer.scale)


class _LayerChoice(QComboBox):
    """The viewer's layers of one type, kept up to date."""

    def __init__(self, viewer: Any, kind: type):
        super().__init__()
        self.viewer, self.kind = viewer, kind
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self.refresh)
        self.refresh()

    def refresh(self, *_: Any) -> None:
        current = self.currentText()
        self.clear()
        self.addItems([ly.name for ly in self.viewer.layers if isinstance(ly, self.kind)])
        if current:
            self.setCurrentText(current)

    def layer(self) -> Layer | None:
        name = self.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None


class ReviewWidget(QWidget):
    """Walks a prepare output's samples in review order; saves the fixes painted on the labels
    as the sample's hand labels.tif or scribbles.png in its raw folder."""

    def __init__(self, napari_viewer: Any):
        super().__init__()
        self.setMinimumWidth(460)
        self.viewer = napari_viewer
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("prepare output folder")
        browse, load = QPushButton("…"), QPushButton("Load")
        browse.clicked.connect(self._browse)
        load.clicked.connect(self.load_folder)
        self.samples = QListWidget()
        self.samples.currentRowChanged.connect(self.show_sample)
        self.mode = QComboBox()
        self.mode.addItems(review.SAVE_MODES)
        save, following = QPushButton("Save fixes"), QPushButton("Next sample")
        save.clicked.connect(self.save)
        following.clicked.connect(lambda: self.samples.setCurrentRow(
            min(self.samples.currentRow() + 1, self.samples.count() - 1)))
        self.status = QLabel("Open a prepare output folder (lowest quality first).")
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        for w in (self.folder, browse, load):
            row.addWidget(w)
        buttons = QHBoxLayout()
        for w in (QLabel("save as"), self.mode, save, following):
            buttons.addWidget(w)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.samples)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        self.report: dict[str, Any] = {}
        self.order: list[str] = []
        self.layers: list[Layer] = []
        opened = [_facts(ly)["prepare_dir"] for ly in napari_viewer.layers
                  if "prepare_dir" in _facts(ly)]
        if opened:
            self.folder.setText(opened[0])
            self.load_folder(show=False)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "prepare output folder")
        if folder:
            self.folder.setText(folder)
            self.load_folder()

    def load_folder(self, show: bool = True) -> None:
        """Reads the prepare report and lists its samples in review order."""
        try:
            self.report = layer_data.read_prepare_report(Path(self.folder.text()))
        except UserError as err:
            self.status.setText(str(err))
            return
        entries = {s["name"]: s for s in review.prepared_samples(self.report)}
        self.order = review.review_order(self.report)
        self.samples.blockSignals(True)
        self.samples.clear()
        for name in self.order:
            s = entries[name]
            quality = s.get("registration_quality")
            q = f"{quality:.2f}" if quality is not None else "-"
            self.samples.addItem(f"{name}   quality {q}   confidence "
                                 f"{s.get('mean_confidence', 0):.2f}   {s.get('label_source')}")
        self.samples.blockSignals(False)
        self.status.setText(f"{len(self.order)} samples, lowest quality or confidence first.")
        if show and self.order:
            self.samples.setCurrentRow(0)

    def sample(self) -> str | None:
        row = self.samples.currentRow()
        return self.order[row] if 0 <= row < len(self.order) else None

    def show_sample(self, row: int) -> None:
        """Replaces the viewer's layers of the previous sample with those of ``row``."""
        name = self.sample()
        if name is None:
            return
        for layer in self.layers:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        folder = Path(self.folder.text())
        for ly in list(self.viewer.layers):  # the same sample opened by the reader
            if _facts(ly).get("sample") == name and _facts(ly).get("prepare_dir") == str(folder):
                self.viewer.layers.remove(ly)
        self.layers = [self.viewer.add_layer(Layer.create(*item))
                       for item in layer_data.prepare_layers(folder, name)]
        labels = self.labels_layer()
        if labels is not None:
            self.viewer.layers.selection.active = labels
            labels.mode = "paint"
        self.viewer.reset_view()
        self.status.setText(f"{name}: paint fixes on '{labels.name if labels else ''}', "
                            "then Save fixes.")

    def labels_layer(self) -> Labels | None:
        return next((ly for ly in self.layers if isinstance(ly, Labels)
                     and _facts(ly).get("kind") == "labels"), None)

    def save(self) -> Path | None:
        """Saves the current sample's labels layer into its raw folder (the chosen mode)."""
        name, labels = self.sample(), self.labels_layer()
        if name is None or labels is None:
            self.status.setText("no sample shown")
            return None
        folder = Path(self.folder.text())
        original = tifffile.imread(dataset_layout.label_path(folder, name))
        try:
            path = review.save_review(layer_data.sample_report(self.report, name), self.report,
                                      labels.data, original, self.mode.currentText())
        except UserError as err:
            self.status.setText(str(err))
            return None
        changed = int((np.asarray(labels.data) != original).sum())
        self.status.setText(f"saved {path} ({changed} pixels changed); run prepare again to "
                            "use it.")
        return path


class SegmentWidget(QWidget):
    """Segments the chosen image layer with trained checkpoints as job=segment does, in a
    background worker; adds the labels and entropy layers, phase fractions and shift check."""

    def __init__(self, napari_viewer: Any):
        super().__init__()
        self.setMinimumWidth(380)
        self.viewer = napari_viewer
        self.image = _LayerChoice(napari_viewer, Image)
        self.checkpoint = QLineEdit()
        self.checkpoint.setPlaceholderText("train workdir(s), comma-separated")
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        self.tta = QComboBox()
        self.tta.addItems(sorted(TTA_TRANSFORMS))
        defaults = segmenting.segment_config("")
        self.tta.setCurrentText(defaults.predict.tta)
        self.data_bar = QLineEdit(str(defaults.data_bar))
        self.run_button, self.cancel_button = QPushButton("Segment"), QPushButton("Cancel")
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.result = QLabel("")
        self.result.setWordWrap(True)
        checkpoint = QHBoxLayout()
        checkpoint.addWidget(self.checkpoint)
        checkpoint.addWidget(browse)
        form = QFormLayout()
        form.addRow("image", self.image)
        form.addRow("checkpoint", checkpoint)
        form.addRow("TTA", self.tta)
        form.addRow("data bar", self.data_bar)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.result)
        self.worker: Any = None
        self.last: segmenting.Segmentation | None = None

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "train workdir")
        if folder:
            self.checkpoint.setText(folder)

    def config(self) -> Any:
        bar = self.data_bar.text().strip()
        return segmenting.segment_config(
            self.checkpoint.text(), data_bar=int(bar) if bar.isdigit() else bar,
            predict={"tta": self.tta.currentText()})

    def run(self) -> Any:
        """Starts the background worker; returns it (tests wait on its signals)."""
        layer = self.image.layer()
        if layer is None:
            self.result.setText("choose an image layer")
            return None
        try:
            config = self.config()
        except UserError as err:
            self.result.setText(str(err))
            return None
        self.worker = _segment_worker(np.asarray(layer.data), config)
        self.worker.yielded.connect(self._step)
        self.worker.returned.connect(lambda seg: self.show(seg, layer))
        self.worker.errored.connect(lambda err: self.result.setText(f"failed: {err}"))
        self.worker.finished.connect(self._idle)
        self.progress.setRange(0, 2)
        self.progress.setValue(0)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.worker.start()
        return self.worker

    def _step(self, step: tuple[int, str]) -> None:
        self.progress.setValue(step[0])
        self.result.setText(step[1])

    def cancel(self) -> None:
        """Stops the worker at its next step (a running prediction ends first)."""
        if self.worker is not None:
            self.worker.quit()
            self.result.setText("cancelled")

    def _idle(self) -> None:
        self.progress.setValue(2)
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def show(self, seg: segmenting.Segmentation, layer: Layer) -> None:
        """Adds the segmentation's layers over ``layer`` and its fractions and warning."""
        self.last = seg
        scale = tuple(layer.scale[-2:])
        facts = {"image": layer.name, "pixel_size_nm": _pixel_size_nm(layer)}
        self.viewer.add_layer(Layer.create(seg.entropy, {
            "name": f"{layer.name} entropy", "scale": scale, "colormap": "inferno",
            "visible": False, "metadata": {"socseg": {"kind": "entropy", **facts}}}, "image"))
        self.viewer.add_layer(Layer.create(*layer_data.labels_layer(
            seg.labels, f"{layer.name} labels", scale, **facts)))
        widths = [seg.shift.get(key) for key in UNCERTAINTY_FIELDS]
        text = ", ".join(f"{n} {f:.1f}" + (f" ± {w:.1f}" if w is not None else "") + "%"
                         for n, f, w in zip(CLASS_NAMES, seg.fractions, widths, strict=True))
        if seg.data_bar_rows:
            text += f"; data bar: {seg.data_bar_rows} rows cut"
        if seg.shift.get("warning"):
            text += f"\nWARNING: {seg.shift['warning']}"
        elif "shift_score" in seg.shift:
            text += f"\nshift score {seg.shift['shift_score']} (like the training images)"
        self.result.setText(text)


@thread_worker
def _segment_worker(image: np.ndarray, config: Any):
    """(step, what) progress, then the segmentation; a cancel stops it between the steps."""
    yield 0, "loading the models…"
    segmenter = segmenting.Segmenter.load(config)
    yield 1, f"predicting {image.shape[0]}×{image.shape[1]} px (TTA {config.predict.tta})…"
    return segmenter.segment(image)


class MeasureWidget(QWidget):
    """Runs job=analyze's analysis on a Labels layer: main metrics with units in a table, the
    active and inactive TPB corners as Points layers."""

    def __init__(self, napari_viewer: Any):
        super().__init__()
        self.setMinimumWidth(420)
        self.viewer = napari_viewer
        self.labels = _LayerChoice(napari_viewer, Labels)
        button = QPushButton("Measure")
        button.clicked.connect(self.run)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["metric", "value", "unit"])
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        form.addRow("labels", self.labels)
        layout.addLayout(form)
        layout.addWidget(button)
        layout.addWidget(self.table)
        layout.addWidget(self.status)
        self.last: measure.Measurement | None = None

    def run(self) -> measure.Measurement | None:
        """Measures the chosen Labels layer and shows the result."""
        layer = self.labels.layer()
        if layer is None:
            self.status.setText("choose a Labels layer")
            return None
        pixel = _facts(layer).get("pixel_size_nm") or _pixel_size_nm(layer)
        try:
            result = measure.measure(np.asarray(layer.data), pixel)
        except UserError as err:
            self.status.setText(str(err))
            return None
        self.last = result
        self.table.setRowCount(len(result.rows))
        for i, (name, value, unit) in enumerate(result.rows):
            for j, text in enumerate((name, f"{value:.4g}", unit)):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        scale = tuple(layer.scale[-2:])
        for kind, points, colour in (("active", result.active, "white"),
                                     ("inactive", result.inactive, "red")):
            name = f"{layer.name} {kind} TPB ({result.axis})"
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
            self.viewer.add_points(points, name=name, scale=scale, size=3,
                                   face_color=colour, border_width=0)
        unit = "µm" if pixel else "px (pixel size unknown)"
        self.status.setText(f"{layer.name}: {len(result.active)} active, "
                            f"{len(result.inactive)} inactive TPB corners; lengths in {unit}")
        return result
