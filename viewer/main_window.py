"""The main window: lays out the widgets, the menu and the status bar; holds no engine logic.

Left: the query browser. Centre: the selected query and its ranked results. Right: overall
accuracy and the post-processing controls. Before the first load finishes, a loading page with
the progress (or the reason the load failed) takes the centre.
"""
from __future__ import annotations

import os

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from viewer.case.controller import CaseController
from viewer.controller import Controller
from viewer.inspector.controller import InspectorController
from viewer.inspector.tab import InspectorTab
from viewer.keyboard import KeyNavigator
from viewer.marks.controller import MarksController
from viewer.marks.state import DIFFERENT, SAME
from viewer.occlusion.controller import OcclusionController
from viewer.occlusion.view import OcclusionDock
from viewer.settings import remember_window, restore_window, user_settings
from viewer.state import ViewerState
from viewer.tasks import LoadRequest, describe_request
from viewer.widgets.display_options import DisplayOptions
from viewer.widgets.error_banner import ErrorBanner
from viewer.widgets.export_dialog import ExportDialog
from viewer.widgets.flow_layout import FlowRow
from viewer.widgets.input_size_dialog import ask_input_size
from viewer.widgets.job_progress import JobProgress
from viewer.widgets.legend import Legend
from viewer.widgets.loading_page import LoadingPage
from viewer.widgets.metrics_panel import MetricsPanel
from viewer.widgets.postprocess_panel import PostprocessPanel
from viewer.widgets.query_browser import QueryBrowser
from viewer.widgets.query_header import QueryHeader
from viewer.widgets.result_grid import ResultGrid
from viewer.widgets.status_info import StatusInfoWidget
from viewer.widgets.thumbnails import ThumbnailCache

__all__ = ["MainWindow", "user_settings"]

IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.bmp *.webp);;All files (*)"
MODEL_FILTER = "Checkpoints (*.pt *.pth *.pth.tar *.tar);;All files (*)"


class MainWindow(QMainWindow):
    """One viewer window around a :class:`Controller` and its state."""

    def __init__(self, controller: Controller | None = None, *, remember: bool = True):
        super().__init__()
        # What is remembered between launches (viewer.settings; remember=False: nothing read or
        # written, for screenshots that must not depend on the user's last session).
        self.settings = user_settings() if remember else None
        self.last_case_folder = ""
        self.pending_splitter = None   # the remembered panes, applied when the results show
        self.controller = controller or Controller(ViewerState())
        self.state = state = self.controller.state
        self.thumbnails = ThumbnailCache()
        self.last_export = None  # the previous export's choice: the next dialog starts from it
        self.setWindowTitle("ReID Inspector")
        screen = self.screen().availableGeometry()   # a smaller screen: all of it
        self.resize(min(1280, screen.width()), min(800, screen.height()))

        # ---------------------------------------------------------------- centre pieces
        self.browser = QueryBrowser(state, self.thumbnails)
        self.header = QueryHeader(state, self.thumbnails)
        self.grid = ResultGrid(state, self.thumbnails)
        self.display = DisplayOptions(state)
        self.legend = Legend()
        self.metrics = MetricsPanel(state)
        self.postprocess = PostprocessPanel(state)
        self.banner = ErrorBanner(state)
        self.loading = LoadingPage(state)

        self.results_title = QLabel("Ranked gallery")
        self.results_title.setObjectName("title")
        # A long title (an occluded ranking's) wraps when the row is crowded, rather than the
        # display options' combos being cut.
        self.results_title.setWordWrap(True)
        self.inspect_button = QPushButton("Inspect match (Enter)")
        self.inspect_button.setToolTip("Open the selected result in the match inspector")
        # One row when there is room, wrapped when the centre is narrow: its width never sets
        # the window's minimum (docs/architecture.md "Window layout").
        toolbar = FlowRow(self.results_title, self.display, self.inspect_button, spacing=12)
        centre = QWidget()
        centre.setObjectName("panel")
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(4, 8, 4, 8)
        centre_layout.addWidget(self.header)
        centre_layout.addWidget(toolbar)
        centre_layout.addWidget(self.grid, 1)
        centre_layout.addWidget(self.legend)

        right = QWidget()
        right.setObjectName("panel")
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(4, 8, 8, 8)
        right_layout.addWidget(self.metrics)
        right_layout.addWidget(self.postprocess)
        self.plots_button = QPushButton("Analysis plots…")
        self.plots_button.setToolTip("CMC, ROC, score distributions, camera pairs and TLift "
                                     "sweeps of the current settings (Ctrl+Shift+P)")
        self.plots_button.clicked.connect(lambda _c=False: self.show_plots())
        right_layout.addWidget(self.plots_button)
        right_layout.addStretch(1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.browser)
        self.splitter.addWidget(centre)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        self.splitter.setSizes([290, 740, 250])
        self.splitter.setChildrenCollapsible(False)

        # The match inspector: a tab beside the ranked results.
        self.inspector_ctl = InspectorController(self.controller)
        self.inspector = InspectorTab(state, self.inspector_ctl)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.splitter, "Ranked results")
        self.tabs.addTab(self.inspector, "Match inspector")

        self.pages = QStackedWidget()
        self.pages.addWidget(self.loading)
        self.pages.addWidget(self.tabs)
        body = QWidget()
        body_layout = QVBoxLayout(body)
        body_layout.setContentsMargins(0, 0, 0, 0)
        body_layout.setSpacing(0)
        body_layout.addWidget(self.banner)
        body_layout.addWidget(self.pages, 1)
        self.setCentralWidget(body)

        # ---------------------------------------------------------------- status bar
        self.status_info = StatusInfoWidget(state)
        self.job_progress = JobProgress(state, show_stage=False, only_when_loaded=True)
        self.job_progress.setMaximumWidth(320)
        self.statusBar().addPermanentWidget(self.status_info)
        self.statusBar().addPermanentWidget(self.job_progress)
        state.events.message.connect(lambda text: self.statusBar().showMessage(text, 8000))

        # ---------------------------------------------------------------- occlusion dock
        self.occlusion = OcclusionDock(OcclusionController(self.controller), self, self.settings)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.occlusion)
        self.occlusion.hide()
        state.events.overrides.connect(self._show_results_title)
        state.events.selected_query.connect(self._show_results_title)

        self.plots_dock = None
        self.compare_dock = None
        self.controller.input_size_needed.connect(self._ask_load_size)
        self.path_dock = None
        self.marks_ctl = MarksController(self.controller)
        self.case_ctl = CaseController(self.marks_ctl)
        self._make_menu()
        mark = self.marks_ctl.mark_selected
        self.keys = KeyNavigator(self, state, self.controller.open_selected_match, {
            Qt.Key.Key_S: lambda: mark(SAME), Qt.Key.Key_D: lambda: mark(DIFFERENT),
            Qt.Key.Key_C: lambda: mark(None)})
        for action in (self.export_action, self.open_image_action):
            self.keys.make_global(action)

        # ---------------------------------------------------------------- wiring
        self.browser.open_image_requested.connect(self.open_image_as_query)
        self.grid.activated_result.connect(self.controller.open_selected_match)
        self.grid.menu_requested.connect(lambda at: self.marks_menu().exec(at))
        self.inspector.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.inspector.customContextMenuRequested.connect(
            lambda pos: self.marks_menu().exec(self.inspector.mapToGlobal(pos)))
        self.inspect_button.clicked.connect(lambda _c=False: self.controller.open_selected_match())
        self.inspector_ctl.inspector.events.open.connect(self._show_inspector)
        self.tabs.currentChanged.connect(self._tab_changed)
        # Build the inspector's view right after the first paint, so Enter opens it at once.
        self.controller.load_finished.connect(lambda _ok: QTimer.singleShot(0, self.inspector.build))
        self.job_progress.cancel_requested.connect(self.controller.cancel_jobs)
        self.loading.cancel_requested.connect(self.controller.cancel_jobs)
        self.loading.open_data_requested.connect(self.open_dataset)
        self.loading.open_checkpoint_requested.connect(self.open_checkpoint)
        self.loading.retry_requested.connect(self.retry_load)
        state.events.session.connect(self._show_page)
        self._show_page()
        if self.settings is not None:
            restore_window(self, self.settings)

    # ------------------------------------------------------------------ menu
    def _make_menu(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_image_action = self._action(file_menu, "Open image as query…", "Ctrl+O",
                                              self.open_image_as_query)
        self._action(file_menu, "Open dataset folder…", None, self.open_dataset)
        self._action(file_menu, "Open model…", None, self.open_checkpoint)
        self._action(file_menu, "Compare with model…", None, self.compare_with_model)
        file_menu.addSeparator()
        self.export_action = self._action(file_menu, "Export ranked lists to CSV…", "Ctrl+E",
                                          self.export_csv)
        self._action(file_menu, "Save case…", "Ctrl+S", self.save_case)
        self._action(file_menu, "Open case…", None, self.open_case)
        self._action(file_menu, "Export match view to PNG…", None,
                     lambda: self.inspector.build()._export_dialog())
        file_menu.addSeparator()
        self._action(file_menu, "Quit", QKeySequence.StandardKey.Quit, self.close)
        self.marks_menu(self.menuBar().addMenu("&Marks"))
        view_menu = self.menuBar().addMenu("&View")
        self._action(view_menu, "Cancel running job / back to the grid", "Esc", self._escape)
        occlusion = self.occlusion.toggleViewAction()
        occlusion.setText("Occlusion panel")
        occlusion.setShortcut(QKeySequence("Ctrl+Shift+O"))
        view_menu.addAction(occlusion)
        self._action(view_menu, "Analysis plots…", "Ctrl+Shift+P", self.show_plots)
        self._action(view_menu, "Person's path (camera × time)", "Ctrl+Shift+T", self.show_path)
        # Two-stage retrieval is picked automatically on large sets; this forces exhaustive scoring.
        self._action(view_menu, "Reload with exhaustive scoring", None,
                     lambda: self.start_load(self._request(shortlist=None)))

    def marks_menu(self, menu: QMenu | None = None) -> QMenu:
        """Mark the selected result (the grid's right-click menu, the inspector's, Marks in
        the menu bar). The keys are named, not bound: S / D / C are the key navigator's."""
        menu = menu if menu is not None else QMenu(self)
        mark = self.marks_ctl.mark_selected
        for text, slot in (("Same person\tS", lambda: mark(SAME)),
                           ("Different person\tD", lambda: mark(DIFFERENT)),
                           ("Clear mark\tC", lambda: mark(None)),
                           ("Clear all marks of this query",
                            lambda: self.marks_ctl.clear_query(self.state.selected_query))):
            self._action(menu, text, None, slot)
        return menu

    def _action(self, menu, text: str, shortcut, slot) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)
        return action

    def _escape(self) -> None:
        """Esc: back from the match inspector to the grid, else cancel the running job."""
        if self.inspector_ctl.inspector.open:
            self.inspector_ctl.close()
        else:
            self.controller.cancel_jobs()

    def _show_results_title(self) -> None:
        """What the grid ranks: the query's list, or what replaced it."""
        described = self.state.describe(self.state.selected_query)
        self.results_title.setText("Ranked gallery" if described is None else described.title)

    def _show_inspector(self, on: bool) -> None:
        self.tabs.setCurrentWidget(self.inspector if on else self.splitter)
        # The keys follow the page on show, however it was opened (Enter, double-click, the
        # button, the tab): arrows step from the match view, not from a control it last used.
        (self.inspector.build() if on else self.grid).setFocus(Qt.FocusReason.OtherFocusReason)

    def _tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.inspector:
            if not self.inspector_ctl.inspector.open:
                self.inspector_ctl.open()
        else:
            self.inspector_ctl.close()

    def _show_page(self, _value=None) -> None:
        session = self.state.session
        self.pages.setCurrentIndex(1 if session is not None else 0)
        if session is not None and self.pending_splitter is not None:
            self.splitter.restoreState(self.pending_splitter)   # the panes as last time
            self.pending_splitter = None
        if session is not None:
            self.setWindowTitle(f"ReID Inspector — {session.dataset.root}")

    # ------------------------------------------------------------------ loading
    def start_load(self, request: LoadRequest) -> None:
        self.loading.set_subtitle(describe_request(request))
        self.state.load_failed = None
        self.controller.load(request)

    def retry_load(self) -> None:
        if self.controller.last_request is not None:
            self.start_load(self.controller.last_request)

    def _request(self, **changes) -> LoadRequest:
        base = self.controller.last_request or LoadRequest()
        return LoadRequest(**{**base.__dict__, **changes})

    def open_dataset(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a re-id dataset folder")
        if folder:
            self.start_load(self._request(data=folder))

    def _pick_model(self, title: str) -> str:
        path, _ = QFileDialog.getOpenFileName(self, title, "", MODEL_FILTER)
        return path

    def open_checkpoint(self) -> None:
        """File > Open model…: this tool's checkpoint, or another project's (converted into the
        cache on the fly; what was found is shown in the status bar)."""
        path = self._pick_model("Open a model")
        if path:
            self.start_load(self._request(checkpoint=path, height=None, width=None))

    def _ask_load_size(self, needs, request) -> None:
        """The load's checkpoint needs an input size: ask, then load again with it."""
        size = ask_input_size(self, needs)
        if size is not None and request is not None:
            self.start_load(LoadRequest(**{**request.__dict__, "height": size[0],
                                           "width": size[1]}))

    def compare_with_model(self, path: str | None = None):
        """File > Compare with model…: a second checkpoint ranked on this dataset beside the
        first (the comparison dock; built on first use: pyqtgraph loads only then)."""
        if path is None:
            path = self._pick_model("Compare with model")
            if not path:
                return None
        dock = self.show_compare()
        return dock.compare_controller.open(path)

    def show_compare(self):
        if self.compare_dock is None:
            from viewer.compare.view import CompareDock

            self.compare_dock = CompareDock(self.controller, self)
            self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.compare_dock)
            ctl = self.compare_dock.compare_controller
            ctl.input_size_needed.connect(self._ask_compare_size)
        self.compare_dock.show()
        self.compare_dock.raise_()
        return self.compare_dock

    def _ask_compare_size(self, needs) -> None:
        size = ask_input_size(self, needs)
        if size is not None:
            self.compare_dock.compare_controller.open(needs.source, *size)

    # ------------------------------------------------------------------ actions
    def open_image_as_query(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open an image as query", "", IMAGE_FILTER)
        if path:
            self.controller.add_external_query(path)

    def export_csv(self) -> None:
        if self.state.distmat is None:
            self.state.events.message.emit("nothing to export yet")
            return
        default = os.path.join(os.path.expanduser("~"), "ranked_lists.csv")
        dialog = ExportDialog(self.state.top_k, default, self, last=self.last_export)
        if dialog.exec():
            choice = self.last_export = dialog.choice()
            self.controller.export(choice.path, all_queries=choice.all_queries, top_k=choice.top_k)

    def show_plots(self) -> None:
        """Open the analysis plots (built on first use: pyqtgraph loads only then)."""
        if self.plots_dock is None:
            from viewer.plots.dock import PlotsDock

            self.plots_dock = PlotsDock(self.controller, self)
            self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.plots_dock)
            self.plots_dock.setFloating(True)
            self.plots_dock.resize(1400, 820)
        self.plots_dock.show()
        self.plots_dock.raise_()

    def _built_path_dock(self):
        """The person's path dock, built (hidden) on first need: pyqtgraph loads only then."""
        if self.path_dock is None:
            from viewer.path.controller import PathController
            from viewer.path.view import PathDock

            self.path_dock = PathDock(PathController(self.controller), self.thumbnails, self)
            self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.path_dock)
            self.path_dock.hide()
        return self.path_dock

    def show_path(self) -> None:
        """View > Person's path."""
        dock = self._built_path_dock()
        dock.show()
        dock.raise_()

    def path_png(self, size: tuple[int, int] = (1100, 520)) -> bytes:
        """The path view of the selected query as PNG (drawn now, shown or not)."""
        dock = self._built_path_dock()
        dock.controller.active = True
        dock.controller.refresh()
        dock.controller.active = dock.isVisible()
        # Drawn at the case's size, never squeezed: a shown dock is copied off screen.
        copy = type(dock)(dock.controller, self.thumbnails) if dock.isVisible() else None
        if copy is not None:
            copy.resize(*size)
            copy.draw()
        body = (copy or dock).widget()
        body.resize(*size)
        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        body.grab().save(buffer, "PNG")
        if copy is not None:
            copy.deleteLater()
        return bytes(data.data())

    def save_case(self, folder: str | None = None):
        """File > Save case: the selected query's case into a folder (once the path view can
        score its legs; ``case_ctl.saved`` says when it is written)."""
        folder = folder or QFileDialog.getExistingDirectory(self, "Save the case into a folder",
                                                            self.last_case_folder)
        if not folder:
            return None
        self.last_case_folder = os.path.dirname(os.path.abspath(folder))
        path = self._built_path_dock().controller
        if not path.ready():   # the legs' transits first (a background job), then the case
            def then() -> None:
                path.transits_ready.disconnect(then)
                self.case_ctl.save(folder, self.path_png())

            path.transits_ready.connect(then)
            self.state.events.message.emit("saving the case once the camera-pair transits are "
                                           "computed…")
            return None
        return self.case_ctl.save(folder, self.path_png())

    def open_case(self, folder: str | None = None) -> bool:
        """File > Open case: a case folder on the open dataset and checkpoint."""
        folder = folder or QFileDialog.getExistingDirectory(self, "Open a case folder",
                                                            self.last_case_folder)
        return bool(folder) and self.case_ctl.open(folder)

    # ------------------------------------------------------------------ lifetime
    def closeEvent(self, event) -> None:
        if self.settings is not None:
            remember_window(self, self.settings)
        if self.occlusion.isVisible():
            self.occlusion.save_width()
        self.keys.uninstall()
        if self.plots_dock is not None:
            self.plots_dock.shutdown()
        if self.compare_dock is not None:
            self.compare_dock.shutdown()
        self.controller.shutdown()
        super().closeEvent(event)
