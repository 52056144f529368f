"""The reference of every setting, rendered from the declarations (docs/configuration.md).

``python -m config`` prints it; a test checks that docs/configuration.md is this text, so
the document cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

from config.admission import AdmissionSettings
from config.autoscaler import AutoscalerSettings
from config.dashboard import DashboardSettings
from config.env import variables, write_value
from config.monitoring import MonitoringSettings
from config.node import NodeSettings
from config.serving import ServingSettings
from config.settings import Settings
from config.stack import StackSettings
from config.web import WebSettings

#: Every settings class, in the order the reference lists them.
SETTINGS_CLASSES: tuple[type, ...] = (
    Settings, ServingSettings, WebSettings, AdmissionSettings, DashboardSettings,
    MonitoringSettings, AutoscalerSettings, StackSettings, NodeSettings,
)

HEADER = """# Configuration

Every facefleet process reads its settings from environment variables, once, at
start. This page is generated from the declarations in `config/` by `python -m config`
(a test keeps it in step with the code): do not edit it by hand.

An unset or empty variable means its default. A bad value stops the process with one
line naming the variable and what is wrong with it.
"""


def document(classes: tuple[type, ...] = SETTINGS_CLASSES) -> str:
    """Markdown: the header, then one table per settings class."""
    parts = [HEADER]
    for cls in classes:
        title = (cls.__doc__ or cls.__name__).strip().splitlines()[0].rstrip(".")
        rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
        for field, var in variables(cls):
            if not var.exported:
                continue  # another class owns the variable and lists it
            default = var.default_doc if var.default_doc is not None else \
                _shown(field.default)
            rows.append(f"| `{var.env}` | {default} | {_cell(var.doc)} |")
        parts.append(f"## {title}\n\n`{cls.__module__}.{cls.__name__}`\n\n" + "\n".join(rows))
    return "\n\n".join(parts) + "\n"


def _shown(value: Any) -> str:
    text = write_value(value)
    return f"`{text}`" if text else "(unset)"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
