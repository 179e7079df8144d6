"""The dock that holds the analysis plots panel (floating by default: the plots want room)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget

from viewer.controller import Controller
from viewer.plots.controller import PlotsController
from viewer.plots.view import PlotsPanel

__all__ = ["PlotsDock"]


class PlotsDock(QDockWidget):
    """Analysis plots of the window's session; its data refreshes only while it is shown."""

    def __init__(self, controller: Controller, parent=None):
        super().__init__("Analysis plots", parent)
        self.setObjectName("plotsDock")
        self.plots_controller = PlotsController(controller)
        self.panel = PlotsPanel(self.plots_controller)
        self.setWidget(self.panel)
        self.setAllowedAreas(Qt.DockWidgetArea.BottomDockWidgetArea
                             | Qt.DockWidgetArea.RightDockWidgetArea)
        self.visibilityChanged.connect(
            lambda visible: setattr(self.plots_controller.plots, "visible", bool(visible)))

    def shutdown(self) -> None:
        self.plots_controller.shutdown()
