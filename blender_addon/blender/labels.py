"""Labels that wrap: Blender cuts a label at the region's edge, so long messages are drawn as several lines."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bpy

from ..core.messages import chars_for_width, wrap

if TYPE_CHECKING:  # the stubs' Literal of icon names; no such module in Blender
    from bpy.stub_internal.rna_enums import IconItems


def line_width(context: bpy.types.Context) -> int:
    """Characters per label line in the region being drawn (Blender cuts labels; we wrap them instead)."""
    region = context.region
    scale = context.preferences.view.ui_scale if context.preferences is not None else 1.0
    return chars_for_width(region.width if region is not None else 300, scale)


def wrapped_label(layout: bpy.types.UILayout, context: bpy.types.Context, text: str, icon: IconItems = "NONE") -> None:
    """`text` as labels of whole words that fit the region; the icon on the first line, later lines indented."""
    column = layout.column(align=True)
    for number, line in enumerate(wrap(text, line_width(context))):
        column.label(text=line, icon=icon if number == 0 or icon == "NONE" else "BLANK1")
