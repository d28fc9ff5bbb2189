"""Mark Contact: click on the body or a placed object to add a soft disc of weight to their contact group (Ctrl+click
takes it away), e.g. when no contact model ran and the groups are empty. Refit then places the object from them.

`mark_along_ray` is the whole click on a world-space ray (what the modal operator computes from the mouse), so
scripts and headless tests use the same path; the disc's maths is in core/mark.py.
"""

from __future__ import annotations

import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import bpy
from bpy.props import BoolProperty, FloatVectorProperty, StringProperty
from bpy_extras import view3d_utils
from mathutils import Matrix, Vector

from ..core import contact, mark
from ..core.messages import join_sentences
from . import build, gather, props

if TYPE_CHECKING:  # see operators.py
    from bpy.stub_internal.rna_enums import OperatorReturnItems

    Status = set[OperatorReturnItems]

_GRAPHS: dict[tuple[int, int, int], list[list[int]]] = {}  # (mesh session_uid, vertices, faces) -> graph
_GRAPHS_KEPT = 4
_OVERLAPPING = ("HEADER", "TOOL_HEADER", "TOOLS", "UI", "HUD", "ASSET_SHELF", "ASSET_SHELF_HEADER")


@dataclass(frozen=True)
class MarkTarget:
    """A mesh a click may land on, and the contact group the click marks on it."""

    obj: bpy.types.Object
    group: str


@dataclass(frozen=True)
class MarkOutcome:
    """What one click did: which mesh it hit, where (world), and how many vertices' weights changed."""

    target: MarkTarget
    location: Vector
    changed: int
    removed: bool

    def text(self, radius: float) -> str:
        if self.changed == 0:
            return join_sentences(
                f"No vertex of {self.target.obj.name} lies within {radius * 100:.3g} cm of the click",
                "Raise the Radius in the panel",
            )
        verb = "Removed contact from" if self.removed else "Marked contact on"
        return f"{verb} {self.changed} vertices of {self.target.obj.name}."


def pair_targets(placed: bpy.types.Object) -> list[MarkTarget]:
    """The body of the placed object's run and the placed object itself, each with their contact group for the
    object's label (created empty when missing, e.g. deleted by hand). Empty when `placed` is not in a run."""
    run = next((c for c in placed.users_collection if c.get("ivlm_job_id")), None)
    if run is None or placed.get("ivlm_role") != "object":
        return []
    body, _ = build.run_objects(run)
    group = contact.group_name(str(placed["ivlm_label"]))
    targets = [MarkTarget(obj, group) for obj in (body, placed) if obj is not None]
    for target in targets:
        if group not in target.obj.vertex_groups:
            target.obj.vertex_groups.new(name=group)
    return targets


class _GroupWeights(Mapping[int, float]):
    """A vertex group's weights as a read-only mapping, read per vertex on demand (a disc reads a few hundred)."""

    def __init__(self, group: bpy.types.VertexGroup, count: int) -> None:
        self._group, self._count = group, count

    def __getitem__(self, index: int) -> float:
        try:
            return float(self._group.weight(index))
        except RuntimeError:  # not a member: weight 0
            raise KeyError(index) from None

    def __iter__(self) -> Iterator[int]:
        return iter(range(self._count))

    def __len__(self) -> int:
        return self._count


class _WorldPoints:
    """Flat world xyz (core.mark.Positions) of a mesh's vertices, each transformed when first read: a click reads
    the few hundred vertices around it, not the whole mesh (10,475 for a body). Integer indices only."""

    def __init__(self, local: array.array, matrix: Matrix) -> None:
        self._local = local
        self._rows = [[matrix[r][c] for c in range(4)] for r in range(3)]
        self._points: dict[int, tuple[float, float, float]] = {}

    def __len__(self) -> int:
        return len(self._local)

    def __getitem__(self, index: int) -> float:
        # No typing.overload here: with one in the add-on, bpy 4.2.23 (Python 3.11) segfaulted on exit (reproduced)
        vertex, axis = divmod(index, 3)
        point = self._points.get(vertex)
        if point is None:
            x, y, z = self._local[3 * vertex : 3 * vertex + 3]
            a, b, c = self._rows
            point = (
                a[0] * x + a[1] * y + a[2] * z + a[3],
                b[0] * x + b[1] * y + b[2] * z + b[3],
                c[0] * x + c[1] * y + c[2] * z + c[3],
            )
            self._points[vertex] = point
        return point[axis]


def _world_positions(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> tuple[_WorldPoints, bool]:
    """The world positions of the object's own vertices (`gather.shown_positions`), and whether the evaluated mesh
    has the same topology."""
    local, same = gather.shown_positions(obj, depsgraph)
    return _WorldPoints(local, obj.matrix_world), same


def _graph(mesh: bpy.types.Mesh) -> list[list[int]]:
    """The mesh's face graph (core.mark.face_graph), built once per mesh and topology."""
    key = (mesh.session_uid, len(mesh.vertices), len(mesh.polygons))
    if key not in _GRAPHS:
        starts = [0] * len(mesh.polygons)
        totals = [0] * len(mesh.polygons)
        corners = [0] * len(mesh.loops)
        mesh.polygons.foreach_get("loop_start", starts)
        mesh.polygons.foreach_get("loop_total", totals)
        mesh.loops.foreach_get("vertex_index", corners)
        faces = (corners[start : start + total] for start, total in zip(starts, totals, strict=True))
        while len(_GRAPHS) >= _GRAPHS_KEPT:  # the oldest goes: a session marks a body and one object
            del _GRAPHS[next(iter(_GRAPHS))]
        _GRAPHS[key] = mark.face_graph(len(mesh.vertices), faces)
    return _GRAPHS[key]


def _hit(
    targets: Sequence[MarkTarget], origin: Vector, direction: Vector, depsgraph: bpy.types.Depsgraph
) -> tuple[MarkTarget, Vector, int] | None:
    """The nearest visible target the ray hits: (target, world location, face index of the evaluated mesh)."""
    nearest: tuple[float, MarkTarget, Vector, int] | None = None
    for target in targets:
        obj = target.obj
        if not obj.visible_get():
            continue
        inverse = obj.matrix_world.inverted_safe()
        local_origin = inverse @ origin
        local_direction = inverse.to_3x3() @ direction
        found, location, _normal, face = obj.ray_cast(local_origin, local_direction, depsgraph=depsgraph)
        if not found:
            continue
        world = obj.matrix_world @ location
        distance = (world - origin).length
        if nearest is None or distance < nearest[0]:
            nearest = (distance, target, world, face)
    return None if nearest is None else nearest[1:]


def mark_along_ray(
    context: bpy.types.Context,
    targets: Sequence[MarkTarget],
    origin: Vector,
    direction: Vector,
    radius: float,
    remove: bool = False,
) -> MarkOutcome | None:
    """One click, given as a world-space ray: the nearest target hit gets the soft disc (radius in metres,
    measured along its surface) max-combined into its group, or subtracted with `remove`. None: the ray hit none."""
    depsgraph = context.evaluated_depsgraph_get()
    hit = _hit(targets, origin, direction.normalized(), depsgraph)
    if hit is None:
        return None
    target, location, face_index = hit
    obj, mesh = target.obj, gather.mesh_of(target.obj)
    positions, same_topology = _world_positions(obj, depsgraph)
    face = list(mesh.polygons[face_index].vertices) if same_topology and face_index >= 0 else None
    group = obj.vertex_groups[target.group]
    current = _GroupWeights(group, len(mesh.vertices))
    new = mark.mark(positions, _graph(mesh), (location.x, location.y, location.z), face, current, radius, remove)
    _write(group, new)
    build.refresh_contact_colors(obj, list(new))
    return MarkOutcome(target, location, len(new), remove)


def _write(group: bpy.types.VertexGroup, weights: Mapping[int, float]) -> None:
    """Sets the weights; a vertex whose weight drops to 0 leaves the group."""
    gone = [i for i, w in weights.items() if w <= 0.0]
    if gone:
        group.remove(gone)
    for index, weight in weights.items():
        if weight > 0.0:
            group.add([index], weight, "REPLACE")


Saved = list[tuple[MarkTarget, dict[float, list[int]]]]


def _snapshot(targets: Sequence[MarkTarget]) -> Saved:
    """The groups' weights as {weight: vertices}, to put back exactly when marking is cancelled."""
    saved = []
    for target in targets:
        by_weight: dict[float, list[int]] = {}
        for index, weight in enumerate(build.group_weights(target.obj, target.group)):
            if weight > 0.0:
                by_weight.setdefault(weight, []).append(index)
        saved.append((target, by_weight))
    return saved


def _restore(saved: Saved) -> None:
    for target, by_weight in saved:
        obj = target.obj
        group = obj.vertex_groups.get(target.group)
        if group is None:
            continue
        group.remove(list(range(len(gather.mesh_of(obj).vertices))))
        for weight, indices in by_weight.items():
            group.add(indices, weight, "REPLACE")
        build.paint_contact_colors(obj)


def _view_region(area: bpy.types.Area, x: int, y: int) -> bpy.types.Region | None:
    """The 3D view's main region under the window coordinates (x, y), unless a sidebar, toolbar or header that
    overlaps it is there (a click on the panel is not a click on the scene)."""
    inside = [r for r in area.regions if r.x <= x < r.x + r.width and r.y <= y < r.y + r.height and r.width > 1]
    if any(r.type in _OVERLAPPING for r in inside):
        return None
    return next((r for r in inside if r.type == "WINDOW"), None)


def ray_through(region: bpy.types.Region, view: bpy.types.RegionView3D, x: float, y: float) -> tuple[Vector, Vector]:
    """The world-space ray through the region pixel (x, y) (region coordinates), for the view's projection."""
    return (
        view3d_utils.region_2d_to_origin_3d(region, view, (x, y)),
        view3d_utils.region_2d_to_vector_3d(region, view, (x, y)),
    )


HELP = "Click: mark contact. Ctrl+click: remove. Enter or right-click: done. Esc: undo these marks."


@dataclass
class MarkSession:
    """One Mark Contact session: the pair it marks, their weights when it began (Esc puts them back), and what the
    last click did (also shown in the 3D view's header). `handle` answers the modal operator's events."""

    targets: list[MarkTarget]
    saved: Saved
    last: str = ""

    @classmethod
    def start(cls, targets: list[MarkTarget]) -> MarkSession:
        """A session on `targets`; their graphs are built now, so the first click is as quick as the others."""
        for target in targets:
            _graph(gather.mesh_of(target.obj))
        return cls(targets, _snapshot(targets))

    def handle(self, context: bpy.types.Context, event: bpy.types.Event) -> OperatorReturnItems:
        """FINISHED (Enter, right-click), CANCELLED (Esc: the marks are undone), RUNNING_MODAL (a click in the 3D
        view: marked, Ctrl: removed), PASS_THROUGH (anything else: navigation and the panel stay usable)."""
        if event.value != "PRESS":
            return "PASS_THROUGH"
        if event.type in ("RET", "NUMPAD_ENTER", "RIGHTMOUSE"):
            return "FINISHED"
        if event.type == "ESC":
            _restore(self.saved)
            return "CANCELLED"
        area = context.area
        if event.type != "LEFTMOUSE" or area is None:
            return "PASS_THROUGH"
        region = _view_region(area, event.mouse_x, event.mouse_y)
        space = area.spaces.active
        if region is None or not isinstance(space, bpy.types.SpaceView3D):
            return "PASS_THROUGH"
        view = region.data if isinstance(region.data, bpy.types.RegionView3D) else space.region_3d
        if view is None:
            return "PASS_THROUGH"
        origin, direction = ray_through(region, view, event.mouse_x - region.x, event.mouse_y - region.y)
        radius = props.scene_settings(context).mark_radius
        outcome = mark_along_ray(context, self.targets, origin, direction, radius, remove=event.ctrl)
        self.last = outcome.text(radius) if outcome is not None else "Missed: click on the body or the object."
        area.header_text_set(f"{self.last} {HELP}")
        area.tag_redraw()
        return "RUNNING_MODAL"


_ACTIVE: list[bool] = [False]  # one marking session at a time


class MarkContactOperator(bpy.types.Operator):
    """Mark Contact's properties and behaviour; registered as IVLM_OT_mark_contact (never itself: subclassing a
    registered operator class unhooks it from Blender, and tests subclass this one)."""

    # `# type: ignore[valid-type]`: Blender's property annotations are calls (see props.py)
    object_name: StringProperty(name="Object", description="The placed object of the pair")  # type: ignore[valid-type]
    ray_origin: FloatVectorProperty(name="Ray origin", size=3, subtype="XYZ")  # type: ignore[valid-type]
    ray_direction: FloatVectorProperty(  # type: ignore[valid-type]
        name="Ray direction", size=3, subtype="XYZ", default=(0.0, 0.0, -1.0)
    )
    remove: BoolProperty(name="Remove", description="Take weight away instead of adding it")  # type: ignore[valid-type]

    _session: MarkSession | None = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if _ACTIVE[0]:
            cls.poll_message_set("Mark Contact is already running: press Enter or right-click in the 3D view.")
            return False
        return True

    def _resolve(self, context: bpy.types.Context) -> list[MarkTarget]:
        placed = bpy.data.objects.get(self.object_name)
        targets: list[MarkTarget] = pair_targets(placed) if placed is not None else []
        if not targets:
            self.report(
                {"ERROR"},
                join_sentences(f"{self.object_name} is not a placed object of a run", "Use a Mark button in the panel"),
            )
        elif context.object is not None and context.object.mode not in ("OBJECT", "WEIGHT_PAINT"):
            bpy.ops.object.mode_set(mode="OBJECT")  # vertex groups cannot change in Edit Mode
        return targets

    def execute(self, context: bpy.types.Context) -> Status:
        """One mark along the ray in the operator's properties (world space): for scripts and tests."""
        targets = self._resolve(context)
        if not targets:
            return {"CANCELLED"}
        radius = props.scene_settings(context).mark_radius
        origin, direction = Vector(self.ray_origin), Vector(self.ray_direction)
        outcome = mark_along_ray(context, targets, origin, direction, radius, self.remove)
        if outcome is None:
            self.report({"WARNING"}, "The ray missed the body and the object. Aim at one of them.")
            return {"CANCELLED"}
        self.report({"INFO"}, outcome.text(radius))
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Status:
        wm = context.window_manager
        if wm is None or not self.begin(context):
            return {"CANCELLED"}
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def begin(self, context: bpy.types.Context) -> bool:
        """Starts a session in the 3D view (cursor, header help); False when it cannot (reported)."""
        if context.area is None or context.area.type != "VIEW_3D" or context.window is None:
            self.report({"ERROR"}, "Mark Contact works in the 3D view. Use the Mark button in its sidebar.")
            return False
        targets = self._resolve(context)
        if not targets:
            return False
        self._session = MarkSession.start(targets)
        _ACTIVE[0] = True
        context.window.cursor_modal_set("PAINT_CROSS")
        context.area.header_text_set(HELP)
        return True

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> Status:
        if self._session is None:
            return {"CANCELLED"}
        status = self._session.handle(context, event)
        if status in ("FINISHED", "CANCELLED"):
            self._end(context)
        return {status}

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the operator (the window closes, a file loads): the marks made so far stay."""
        self._end(context)

    def _end(self, context: bpy.types.Context) -> None:
        _ACTIVE[0] = False
        self._session = None
        if context.window is not None:
            context.window.cursor_modal_restore()
        if context.area is not None:
            context.area.header_text_set(None)
            context.area.tag_redraw()


class IVLM_OT_mark_contact(MarkContactOperator):
    """Click on the body or the object to mark where they touch (a soft disc of weight in their contact group);
    Ctrl+click removes it. Enter or right-click when done, Esc to undo the marks"""

    bl_idname = "ivlm.mark_contact"
    bl_label = "Mark Contact"
    bl_options = {"UNDO"}


CLASSES = (IVLM_OT_mark_contact,)
