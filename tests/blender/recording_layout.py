"""Stands in for Blender's UILayout when a panel is drawn from a test: headless Blender draws nothing, so `draw` is
called with this recorder. It records labels, buttons (with the properties set on them) and property fields, and
checks every call against the real UILayout of the Blender it runs in: the method and its keyword arguments exist
(e.g. `placeholder` needs 4.1+, `panel` 4.1+), icons are real icon names, a property field names a real property,
and a button an operator that is registered, with the properties it sets. So a draw that would fail in this
Blender's real sidebar fails here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import bpy

_FUNCTIONS = bpy.types.UILayout.bl_rna.functions
_ICONS = {item.identifier for item in _FUNCTIONS["label"].parameters["icon"].enum_items}


@dataclass
class Button:
    idname: str
    text: str
    icon: str
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def shown(self) -> str:
        """The button's text as Blender shows it: its own text, else the operator's name."""
        if self.text:
            return self.text
        category, name = self.idname.split(".")
        return getattr(getattr(bpy.ops, category), name).get_rna_type().name


@dataclass
class Field:
    data: Any
    prop: str
    text: str | None
    kwargs: dict[str, Any]


@dataclass
class Recording:
    labels: list[str] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)
    fields: list[Field] = field(default_factory=list)
    panels: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # every label and button text, top to bottom

    def button(self, text: str) -> Button:
        (found,) = [b for b in self.buttons if b.shown == text]
        return found

    def field(self, prop: str) -> Field:
        (found,) = [f for f in self.fields if f.prop == prop]
        return found


class _Properties:
    """What `layout.operator` returns: setting a property the operator does not have is an error, as in Blender."""

    def __init__(self, button: Button) -> None:
        object.__setattr__(self, "_button", button)
        category, name = button.idname.split(".")
        rna = getattr(getattr(bpy.ops, category), name).get_rna_type()
        object.__setattr__(self, "_names", {p.identifier for p in rna.properties})

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._names:
            raise AttributeError(f"{self._button.idname} has no property {name!r}")
        self._button.properties[name] = value


class Layout:
    def __init__(self, recording: Recording | None = None) -> None:
        self.recording = recording if recording is not None else Recording()

    def _check(self, method: str, kwargs: dict[str, Any]) -> None:
        assert method in _FUNCTIONS, f"UILayout has no {method}() in Blender {bpy.app.version_string}"
        known = {p.identifier for p in _FUNCTIONS[method].parameters}
        unknown = set(kwargs) - known
        assert not unknown, f"UILayout.{method}() has no argument {unknown} in Blender {bpy.app.version_string}"
        icon = kwargs.get("icon", "NONE")
        assert icon in _ICONS, f"no icon {icon!r} in Blender {bpy.app.version_string}"

    def label(self, **kwargs: Any) -> None:
        self._check("label", kwargs)
        self.recording.labels.append(kwargs.get("text", ""))
        self.recording.order.append(kwargs.get("text", ""))

    def operator(self, idname: str, **kwargs: Any) -> _Properties:
        self._check("operator", kwargs)
        category, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, category), name), f"no operator {idname}"
        button = Button(idname, kwargs.get("text", ""), kwargs.get("icon", "NONE"))
        self.recording.buttons.append(button)
        self.recording.order.append(button.shown)
        return _Properties(button)

    def prop(self, data: Any, prop: str, **kwargs: Any) -> None:
        self._check("prop", kwargs)
        assert prop in data.bl_rna.properties, f"{data} has no property {prop}"
        self.recording.fields.append(Field(data, prop, kwargs.get("text"), kwargs))

    def panel(self, idname: str, **kwargs: Any) -> tuple[Layout, Layout]:
        self._check("panel", kwargs)
        self.recording.panels.append(idname)
        return Layout(self.recording), Layout(self.recording)

    def progress(self, **kwargs: Any) -> None:
        self._check("progress", kwargs)
        self.recording.order.append(kwargs.get("text", ""))

    def _container(self, method: str, kwargs: dict[str, Any]) -> Layout:
        self._check(method, kwargs)
        return Layout(self.recording)

    def row(self, **kwargs: Any) -> Layout:
        return self._container("row", kwargs)

    def column(self, **kwargs: Any) -> Layout:
        return self._container("column", kwargs)

    def box(self, **kwargs: Any) -> Layout:
        return self._container("box", kwargs)

    def split(self, **kwargs: Any) -> Layout:
        return self._container("split", kwargs)


def draw(panel: type, context: Any) -> Recording:
    """Draws `panel` (its class) into a recorder and returns what it drew."""
    layout = Layout()
    panel.draw(type("Drawn", (), {"layout": layout})(), context)
    return layout.recording
