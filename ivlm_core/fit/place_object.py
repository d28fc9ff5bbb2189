"""Placing the user's object against the fitted body: rotation (6D), translation, optional scale.

Everything happens in the photo's CV_CAMERA frame (metres, camera at the origin, see `ivlm_core.frames`).
The result is `camera_from_object`, a 4x4 acting on column vectors that takes the object's own local
vertices (as the client sent them) into that frame; with scale optimised its 3x3 block is s*R.

Terms (each reported separately):
- contact: contact-weighted distance from object contact points to their nearest body contact point and
  back (InteractVLM's term uses all pairs; nearest neighbours keep the cost linear and do not pull every
  contact point towards the centre of the other patch); where one side's labelled area is more than twice the
  other's, only its nearest share (the other's area over its own, twice) counts, in this term and in the starts'
  ICP (`touching_shares`): a low-poly seat labelled whole, where thighs touch a tenth of it, would otherwise
  pull its middle onto them;
- silhouette: projected object points must fall inside the object mask or behind the person (distance
  field of object-or-person mask), and every object-mask pixel must be near a projected object point;
- penetration: object points inside the body (signed distance from the nearest body vertex and its normal);
- depth order: where the photo shows the object over the body, the object is in front, and where the
  person hides the object, the object is behind (front-facing object points against the body's depth map).

Object points (image and penetration terms) and object contact points are spread evenly over the surface,
not taken at the vertices: a low-poly mesh has its vertices only at corners and rims.

Phases (with an object mask; without one, the IoU term and the turns are left out):
- starts: 83 rotations spread over the sphere (cube and icosahedral groups), each moved onto the body contacts
  by a real ICP (correspondences re-found every iteration), and the same 83 kept as they are, moved onto the
  contacts by a translation-only ICP (where the contact covers much of the object, a seat and a backrest, ICP
  takes every start to one pose); a start within 1 degree and 0.5 % of the object's diagonal of an earlier one is
  dropped (`_without_repeats`); all scored on the full loss plus the soft silhouette IoU term;
- coarse: the best 16 starts at least 15 degrees apart, 20 Adam steps (after 10, the worse half by their loss
  stops: successive halving, `_optimise`), ranked again with the IoU term;
- optimise: the best 6 distinct poses (`_distinct`: their placed surfaces at least 6 % of the object's
  diagonal apart), 40 more steps, ranked with the IoU term, distinct poses first;
- turns: the first 4, each turned about the object's principal axes in 30-degree steps, put back on the
  contacts and scored; the 2 best turns join the first 2 hypotheses;
- refine: those 4 optimised with the IoU term added (`silhouette_iou`: the visible silhouette against the
  mask), the worse 2 stopping after 10 of the 40 steps; the lowest total, IoU term included, wins.
Why the IoU ranks every phase: the contact and distance-field terms fit several poses about equally (a cup's
wall against a palm at any spin or tilt, a cylinder lying across the palm), while the overlap of the drawn
silhouette with the mask is highest at the truth; it costs a soft rasterisation per pose, so only the few
refined hypotheses optimise it. Inside each optimisation the nearest-neighbour matches are re-found every
third step (`_Terms.reusing_matches`).

A refit from painted contacts (`refit_options`) starts from the pose the user sees too: that pose and the same
pose turned about the camera's vertical axis (each moved onto the contacts by ICP) join the 24 cube rotations
(instead of 83), with fewer hypotheses kept and refined; the losses and phases are the same.
"""

from __future__ import annotations

import contextlib
import functools
import operator
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import trimesh
from scipy.ndimage import binary_dilation, binary_erosion
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from ivlm_core.errors import BadInputError
from ivlm_core.fit.image_terms import distance_field, project, sample_image
from ivlm_core.fit.procrustes import contact_icp, trimmed_weights
from ivlm_core.fit.rotations import matrix_to_rotation_6d, rotation_6d_to_matrix, start_rotations
from ivlm_core.fit.silhouette_iou import decimated_faces, mask_window, soft_iou_loss
from ivlm_core.mesh import TriangleMesh, face_areas, validate_mesh
from ivlm_core.render.cameras import PinholeCameras
from ivlm_core.render.renderer import rasterize_mesh
from ivlm_core.render.shading import vertex_normals

BODY_CONTACT_THRESHOLD = 0.5  # InteractVLM's fitter: human contact points are prob > 0.5
OBJECT_CONTACT_THRESHOLD = 0.3  # and object contact points prob > 0.3


@dataclass(frozen=True)
class PlacementOptions:
    body_threshold: float = BODY_CONTACT_THRESHOLD
    object_threshold: float = OBJECT_CONTACT_THRESHOLD
    steps: int = 40
    lr_rotation: float = 0.02
    lr_translation: float = 0.02  # times the object's diagonal
    optimise_scale: bool = False
    lr_scale: float = 0.01
    max_object_points: int = 1500  # surface samples used by the image and penetration terms
    # The first this many of them (an even sample too) for the penetration term: its nearest-body-vertex search
    # is the costliest part of a step (README: placement), and a mean depth inside the body needs fewer points than
    # an outline.
    penetration_points: int = 500
    max_contact_points: int = 600
    icp_points: int = 200  # contact points a side that the starts' ICP sees
    match_every: int = 3  # optimisation steps between the body-side nearest-neighbour searches
    max_mask_pixels: int = 400
    # Search: the starts (ICP'd group rotations) ranked by the loss (with a mask, the IoU term too); the best
    # `coarse_hypotheses`, at least `start_separation_deg` apart, get `coarse_steps` steps; ranked again, the best
    # `keep_hypotheses` get `steps` more. With coarse_steps 0, the best `keep_hypotheses` starts get `steps`.
    score_starts_with_iou: bool = True
    coarse_hypotheses: int = 16
    # Starts within this angle and this share of the object's diagonal of an earlier start are dropped before scoring.
    repeat_angle_deg: float = 1.0
    repeat_share: float = 0.005
    coarse_steps: int = 20
    # Successive halving: after this many coarse steps the worse half of the coarse hypotheses stops (keeping its
    # lowest state, still ranked with the rest); 0 turns it off. Why: the order of a batch by its loss settles within
    # its first steps (README: placement).
    coarse_halve_at: int = 10
    start_separation_deg: float = 15.0
    keep_hypotheses: int = 6
    # After the coarse stage the kept hypotheses are distinct poses: their placed surfaces (`distinct_points` of the
    # object points) are at least `distinct_share` of the object's diagonal apart on average.
    distinct_points: int = 300
    distinct_share: float = 0.06
    dense_starts: bool = True  # 83 starting rotations (cube + icosahedral groups) instead of 24
    # Each side's contact distances are averaged over its nearest `touching_shares` only (a trimmed mean), in the
    # loss and in the starts' ICP: a label that covers more than the other side's area cannot all touch.
    trim_contact_by_area: bool = True
    contact_tolerance_m: float = 0.015  # contact labels mark a shell about a centimetre thick, not touching points
    w_contact: float = 1.0
    w_silhouette: float = 1.0
    w_penetration: float = 2.0
    w_depth: float = 1.0
    # Refinement: the best few hypotheses optimised again with a soft silhouette IoU term, which ranks them too.
    refine_hypotheses: int = 4
    refine_steps: int = 40
    refine_lr_share: float = 0.5  # learning rates of the refinement, as a share of the first stage's
    refine_halve_at: int = 10  # as `coarse_halve_at`, for the refinement
    w_iou: float = 0.1  # times the object's diagonal: (1 - IoU) becomes metres like the other terms
    iou_faces: int = 3000  # the object is decimated to about this many faces for the soft silhouette
    iou_blur_px: float = 1.0
    # Turns (with a mask, before the refinement): the best `turn_hypotheses` of the first stage, each turned about
    # the object's principal axes by `turn_angles_deg`, scored on the loss with the IoU; the best `turn_keep`
    # distinct turns join the best `refine_hypotheses - turn_keep` of the first stage in the refinement.
    turn_hypotheses: int = 4
    turn_angles_deg: tuple[float, ...] = tuple(float(a) for a in range(30, 360, 30))
    turn_keep: int = 2
    turn_separation_deg: float = 10.0  # turns kept are at least this far from each other and from the unturned
    seed: int = 0
    # With an `initial` pose (a refit): that pose turned this many times (evenly) about the camera's vertical
    # axis joins the starts, each turn moved onto the contacts by ICP. 0: the initial pose alone joins them.
    initial_turns: int = 0


def refit_options(options: PlacementOptions) -> PlacementOptions:
    """The refit schedule of `options`: starts from the pose the user sees (turned 8 ways about the vertical) and
    the 24 cube rotations instead of 83, the best 4 optimised and 2 refined (instead of 8 and 4); same losses.

    Why this suffices: the user's pose is upright where the photo shows the object, so its turns about the
    vertical cover the likely orientations, and the cube group covers an object lying on its side."""
    return replace(
        options,
        dense_starts=False,
        initial_turns=8,
        keep_hypotheses=4,
        refine_hypotheses=min(options.refine_hypotheses, 2),
    )


@dataclass
class PlacementInputs:
    """What placement needs. Body arrays in CV_CAMERA metres; the object in its own local frame."""

    body_vertices: np.ndarray  # [Nb, 3]
    body_faces: np.ndarray  # [Fb, 3]
    body_contact: np.ndarray  # [Nb] probabilities in [0, 1]
    object_mesh: TriangleMesh
    object_contact: np.ndarray  # [No] probabilities in [0, 1]
    intrinsics: np.ndarray  # [3, 3] OpenCV K
    image_size: tuple[int, int]  # (height, width)
    object_mask: np.ndarray | None = None  # [H, W] bool, visible object pixels
    person_mask: np.ndarray | None = None  # [H, W] bool, visible person pixels


@dataclass
class ObjectPlacement:
    """The placed object, or why it was not placed (status "skipped", camera_from_object None)."""

    status: str  # "placed" or "skipped"
    reason: str
    camera_from_object: np.ndarray | None = None  # [4, 4], object local -> CV_CAMERA, column vectors, metres
    scale: float = 1.0
    losses: dict[str, float] = field(default_factory=dict)
    hypotheses: int = 0
    chosen_hypothesis: int = -1
    timings_s: dict[str, float] = field(default_factory=dict)
    # Every optimised hypothesis's final camera_from_object and total loss, best first: what the choice was made from.
    candidates: list[tuple[np.ndarray, float]] = field(default_factory=list)

    @property
    def placed(self) -> bool:
        return self.status == "placed"


def _check_inputs(inputs: PlacementInputs) -> None:
    validate_mesh(inputs.object_mesh.vertices, inputs.object_mesh.faces, name="object mesh")
    for name, contact, n in (
        ("body_contact", inputs.body_contact, len(inputs.body_vertices)),
        ("object_contact", inputs.object_contact, len(inputs.object_mesh.vertices)),
    ):
        contact = np.asarray(contact)
        if contact.shape != (n,):
            raise BadInputError(
                f"{name} has shape {contact.shape}, expected ({n},): one probability per vertex",
                "Send one contact value per vertex of the mesh it belongs to, in vertex order.",
            )
        if not np.isfinite(contact).all():
            raise BadInputError(f"{name} contains NaN or infinite values", "Send contact values in [0, 1].")
    for name, mask in (("object_mask", inputs.object_mask), ("person_mask", inputs.person_mask)):
        if mask is not None and tuple(mask.shape) != tuple(inputs.image_size):
            raise BadInputError(
                f"{name} is {mask.shape[1]}x{mask.shape[0]} pixels but the image is "
                f"{inputs.image_size[1]}x{inputs.image_size[0]}",
                "Masks must have the photo's size.",
            )


def _subsample(indices: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    return indices if len(indices) <= limit else np.sort(rng.choice(indices, limit, replace=False))


def contact_surface_samples(
    vertices: np.ndarray, faces: np.ndarray, contact: np.ndarray, threshold: float, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Points spread over the faces whose vertices are all in contact, with interpolated weights.

    Body meshes are coarse where contact happens most (about 1 cm between hand vertices), so matching
    against vertices alone leaves centimetre gaps; surface samples close them.
    """
    in_contact = contact > threshold
    chosen = faces[in_contact[faces].all(1)]
    vertex_idx = np.flatnonzero(in_contact)
    if len(chosen) == 0:
        return vertices[vertex_idx], contact[vertex_idx]
    tri = vertices[chosen]
    area = face_areas(vertices, chosen)
    pick = rng.choice(
        len(chosen), size=max(count - len(vertex_idx), 0), p=area / area.sum() if area.sum() > 0 else None
    )
    r1, r2 = np.sqrt(rng.random(len(pick))), rng.random(len(pick))
    bary = np.stack([1 - r1, r1 * (1 - r2), r1 * r2], -1)
    points = (bary[..., None] * tri[pick]).sum(1)
    weights = (bary * contact[chosen[pick]]).sum(1)
    return np.concatenate([vertices[vertex_idx], points]), np.concatenate([contact[vertex_idx], weights])


def contact_area(vertices: np.ndarray, faces: np.ndarray, contact: np.ndarray, threshold: float) -> float:
    """Area (squared units of `vertices`) of the faces whose vertices are all in contact (prob > threshold)."""
    return float(face_areas(vertices, faces[(contact > threshold)[faces].all(1)]).sum())


def touching_shares(object_area: float, body_area: float, slack: float = 2.0) -> tuple[float, float]:
    """(object share, body share): the share of each side's labelled contact area that can touch the other side.

    Two surfaces in contact touch over one area, so where one side's label covers more (a low-poly seat whose
    corners, and so its two whole triangles, are labelled where a thigh touches a part of it), only about the
    other side's area of it touches; the rest must not be pulled onto the body. The ratio is taken `slack` times:
    the faces wholly inside a patch miss its rim, more so on the coarser mesh (a hand's label measures about 0.65
    of a dense mug's), so only a label clearly larger than the other is trimmed. A side without faces in contact
    (labelled vertices only) counts as fully touching."""
    if object_area <= 0.0 or body_area <= 0.0:
        return 1.0, 1.0
    return min(1.0, slack * body_area / object_area), min(1.0, slack * object_area / body_area)


def object_surface_samples(
    vertices: np.ndarray, faces: np.ndarray, options: PlacementOptions, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`options.max_object_points` points [S, 3] spread evenly over the object's surface, and their faces' unit
    normals [S, 3]. Why not the vertices: a low-poly mesh has them only at its corners and rims, where the image
    and penetration terms would see the object as a few points."""
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    points, face_index = trimesh.sample.sample_surface(mesh, options.max_object_points, seed=int(rng.integers(2**31)))
    return np.asarray(points), np.asarray(mesh.face_normals[face_index])


def _contacts(
    inputs: PlacementInputs,
    options: PlacementOptions,
    body_contact: np.ndarray,
    object_contact: np.ndarray,
    centre: np.ndarray,
    rng: np.random.Generator,
) -> _Contacts:
    """Contact points and weights on both sides, spread over the faces in contact as well as at the vertices
    (the object's in its frame centred on `centre`): a seat of 2 triangles has contact vertices at its corners only."""
    body_points, body_weights = contact_surface_samples(
        inputs.body_vertices, inputs.body_faces, body_contact, options.body_threshold, options.max_contact_points, rng
    )
    object_vertices, object_faces = np.asarray(inputs.object_mesh.vertices, np.float64), inputs.object_mesh.faces
    object_points, object_weights = contact_surface_samples(
        object_vertices - centre,
        object_faces,
        object_contact,
        options.object_threshold,
        options.max_contact_points,
        rng,
    )
    keep = _subsample(np.arange(len(object_points)), options.max_contact_points, rng)
    shares = (1.0, 1.0)
    if options.trim_contact_by_area:
        shares = touching_shares(
            contact_area(object_vertices, object_faces, object_contact, options.object_threshold),
            contact_area(inputs.body_vertices, inputs.body_faces, body_contact, options.body_threshold),
        )

    def as_tensor(values: np.ndarray) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32)

    return _Contacts(
        as_tensor(object_points[keep]),
        as_tensor(object_weights[keep]),
        as_tensor(body_points),
        as_tensor(body_weights),
        *shares,
    )


def _body_depth(inputs: PlacementInputs) -> torch.Tensor:
    """The body's depth map [H, W] in the photo's camera (inf where the body is not drawn)."""
    cameras = PinholeCameras(
        torch.eye(4, dtype=torch.float32)[None],
        torch.tensor(inputs.intrinsics, dtype=torch.float32)[None],
        inputs.image_size,
    )
    fragments = rasterize_mesh(
        torch.tensor(inputs.body_vertices, dtype=torch.float32), torch.tensor(inputs.body_faces), cameras
    )
    return fragments.depth[0]


def _optimise(
    options: PlacementOptions,
    size: float,
    total_of: Callable[..., torch.Tensor],
    d6: torch.Tensor,
    trans: torch.Tensor,
    log_scale: torch.Tensor,
    steps: int,
    lr_share: float = 1.0,
    halve_at: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Adam over a batch of hypotheses (6D rotation, translation, log scale), each keeping its lowest-loss state.

    Why the lowest state and not the last: Adam's last steps on a flat valley (a mug's spin when its handle is
    hidden) can end higher than where it has been. `size` (the object's diagonal) scales the translation steps.
    With `halve_at` > 0, after that many steps only the better half (by their lowest loss so far) goes on; the
    others keep their lowest state and are still returned (successive halving: the ranking of a batch settles
    within the first steps, see `PlacementOptions.coarse_halve_at`). Adam acts per coordinate, so the hypotheses
    that go on take the same steps as without the halving.
    """
    d6, trans = d6.detach().clone().requires_grad_(True), trans.detach().clone().requires_grad_(True)
    log_scale = log_scale.detach().clone().requires_grad_(True)
    groups = [
        {"params": [d6], "lr": options.lr_rotation * lr_share},
        {"params": [trans], "lr": options.lr_translation * size * lr_share},  # a mug moves in mm
    ]
    if options.optimise_scale:
        groups.append({"params": [log_scale], "lr": options.lr_scale * lr_share})
    optimiser = torch.optim.Adam(groups)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(steps, 1), eta_min=0.0)
    best_total = torch.full((len(d6),), float("inf"), dtype=d6.dtype)
    best = [d6.detach().clone(), trans.detach().clone(), log_scale.detach().clone()]

    active = torch.arange(len(d6))

    def remember(total: torch.Tensor) -> None:
        better = total.detach() < best_total[active]
        index = active[better]
        best_total[index] = total.detach()[better]
        for kept, now in zip(best, (d6, trans, log_scale)):
            kept[index] = now.detach()[index]

    def state() -> tuple[torch.Tensor, ...]:
        # The whole batch while all go on (no indexing: the same operations as without halving).
        if len(active) == len(d6):
            return d6, trans, log_scale
        return d6[active], trans[active], log_scale[active]

    for step in range(steps):
        if halve_at > 0 and step == halve_at and len(active) > 1:
            active = torch.sort(torch.argsort(best_total)[: (len(active) + 1) // 2]).values
        optimiser.zero_grad()
        total = total_of(*state())
        remember(total)
        total.sum().backward()
        optimiser.step()
        schedule.step()
    with torch.no_grad():
        remember(total_of(*state()))
    return best[0], best[1], best[2]


@dataclass
class _ImageData:
    """The photo's evidence for the image terms, prepared once per placement."""

    allowed_field: torch.Tensor  # [H, W] pixels to the nearest object-or-person pixel
    mask_uv: torch.Tensor  # [P, 2] object-mask pixels (u=col, v=row), a subsample
    focal: float
    body_depth: torch.Tensor  # [H, W] the body's depth, inf where it is not drawn
    depth_filled: torch.Tensor  # [H, W] the body's depth, 0 where it is not drawn
    # [4, H, W] float, the maps that decide which depth-order rule applies, sampled in one pass: the object mask
    # eroded by 2 px, the object mask dilated by 2 px, the person mask eroded by 2 px, and where the body is drawn.
    rule_maps: torch.Tensor


def _image_data(inputs: PlacementInputs, options: PlacementOptions, rng: np.random.Generator) -> _ImageData | None:
    """The image evidence, or None without an object mask."""
    if inputs.object_mask is None or not inputs.object_mask.any():
        return None
    person = inputs.person_mask if inputs.person_mask is not None else np.zeros(inputs.image_size, bool)
    mask_rows, mask_cols = np.nonzero(inputs.object_mask)
    pick = _subsample(np.arange(len(mask_rows)), options.max_mask_pixels, rng)
    body_depth = _body_depth(inputs)
    body_there = torch.isfinite(body_depth)
    return _ImageData(
        allowed_field=distance_field(inputs.object_mask | person),
        mask_uv=torch.tensor(np.stack([mask_cols[pick], mask_rows[pick]], -1), dtype=torch.float32),
        focal=float(inputs.intrinsics[0, 0] + inputs.intrinsics[1, 1]) / 2,
        body_depth=body_depth,
        depth_filled=torch.where(body_there, body_depth, torch.zeros_like(body_depth)),
        rule_maps=torch.from_numpy(
            np.stack(
                [
                    binary_erosion(inputs.object_mask, iterations=2),
                    binary_dilation(inputs.object_mask, iterations=2),
                    binary_erosion(person, iterations=2),
                    body_there.numpy(),
                ]
            ).astype(np.float32)
        ),
    )


@dataclass
class _Contacts:
    """Contact points on both sides: the object's in its centred local frame, the body's in CV_CAMERA."""

    obj_c: torch.Tensor  # [M, 3]
    obj_w: torch.Tensor  # [M]
    body_c: torch.Tensor  # [K, 3]
    body_w: torch.Tensor  # [K]
    # The share of each side's contact points that can touch the other side (`touching_shares`): 1 where its
    # labelled area is no larger than the other's, else the other's area over its own.
    obj_share: float = 1.0
    body_share: float = 1.0


def trimmed_mean(distances: torch.Tensor, weights: torch.Tensor, share: float) -> torch.Tensor:
    """Weighted mean [B] of the smallest `share` of distances [B, N] (weights [N]); share 1 is the plain mean."""
    if share >= 1.0:
        return (distances * weights).sum(-1) / weights.sum()
    count = max(1, int(np.ceil(share * distances.shape[-1])))
    nearest, index = distances.topk(count, dim=-1, largest=False)
    kept = weights[index]
    return (nearest * kept).sum(-1) / kept.sum(-1).clamp_min(1e-12)


class _Terms:
    """The placement loss terms (contact, penetration, silhouette, depth order) for a batch of hypotheses.

    A hypothesis is (6D rotation [B, 6], translation [B, 3], log scale [B]) acting on the centred object.
    Nearest neighbours are found without gradient; the distances they give are differentiable.
    """

    def __init__(
        self,
        options: PlacementOptions,
        contacts: _Contacts,
        points: torch.Tensor,
        normals: torch.Tensor,
        body_v: torch.Tensor,
        body_n: torch.Tensor,
        body_tree: cKDTree,
        images: _ImageData | None,
        k: torch.Tensor,
    ) -> None:
        self.options, self.contacts, self.pts, self.pts_n = options, contacts, points, normals
        self.body_v, self.body_n, self.body_tree, self.images, self.k = body_v, body_n, body_tree, images, k
        self.body_contact_tree = cKDTree(contacts.body_c.numpy())
        self.object_contact_tree = cKDTree(contacts.obj_c.numpy())
        # Nearest-neighbour matches kept between calls (see `reusing_matches`): name -> indices, calls since found.
        self._matches: dict[str, torch.Tensor] = {}
        self._match_every, self._calls = 1, 0
        self.weights = {
            "contact": options.w_contact,
            "penetration": options.w_penetration,
            "silhouette": options.w_silhouette,
            "depth": options.w_depth,
        }

    def total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return functools.reduce(operator.add, (self.weights[name] * value for name, value in terms.items()))

    def __call__(self, d6: torch.Tensor, trans: torch.Tensor, log_scale: torch.Tensor) -> dict[str, torch.Tensor]:
        rot = rotation_6d_to_matrix(d6)
        scale = log_scale.exp()[:, None, None]
        moved = scale * self.pts @ rot.transpose(-1, -2) + trans[:, None]  # [B, S, 3]
        out = {
            "contact": self._contact(rot, scale, trans),
            "penetration": self._penetration(moved[:, : self.options.penetration_points]),
        }
        if self.images is not None:
            out.update(self._image_terms(moved, rot, self.images))
        self._calls += 1
        return out

    @contextlib.contextmanager
    def reusing_matches(self, every: int) -> Iterator[None]:
        """Inside, the nearest neighbours of the penetration, contact (both ways) and coverage terms are searched on
        every `every`-th call only and reused between (same batch). Why: inside an optimisation they change little
        from one step to the next, and the searches are most of a step's cost; the distances stay differentiable."""
        self._match_every, self._calls, self._matches = max(every, 1), 0, {}
        try:
            yield
        finally:
            self._match_every, self._calls, self._matches = 1, 0, {}

    def _match(self, name: str, find: Callable[[], torch.Tensor], shape: tuple[int, ...]) -> torch.Tensor:
        """Indices from `find` (no gradient), or the last ones found when reusing them (see `reusing_matches`)."""
        kept = self._matches.get(name)
        if kept is None or kept.shape != shape or self._calls % self._match_every == 0:
            with torch.no_grad():
                kept = find().reshape(shape)
            if self._match_every > 1:
                self._matches[name] = kept
        return kept

    def _contact(self, rot: torch.Tensor, scale: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
        """Each object contact point to the nearest body contact point and back, beyond the tolerance.

        Matching contact to contact, not to any surface, keeps the information in where each patch lies (a
        mug's grip side, not just its wall).
        """
        c = self.contacts
        moved_c = scale * c.obj_c @ rot.transpose(-1, -2) + trans[:, None]  # [B, M, 3]
        nn_h = self._match(
            "contact",
            lambda: torch.from_numpy(self.body_contact_tree.query(moved_c.detach().reshape(-1, 3).numpy())[1]),
            tuple(moved_c.shape[:2]),
        )

        def nearest_on_object() -> torch.Tensor:
            body_in_object = (c.body_c[None] - trans.detach()[:, None]) @ rot.detach() / scale.detach()
            return torch.from_numpy(self.object_contact_tree.query(body_in_object.reshape(-1, 3).numpy())[1])

        nn_o = self._match("contact_back", nearest_on_object, (len(trans), len(c.body_c)))
        d_oh = (moved_c - c.body_c[nn_h]).norm(dim=-1)
        d_ho = (c.body_c[None] - torch.gather(moved_c, 1, nn_o[..., None].expand(-1, -1, 3))).norm(dim=-1)
        tolerance = self.options.contact_tolerance_m
        d_oh, d_ho = torch.relu(d_oh - tolerance), torch.relu(d_ho - tolerance)
        return trimmed_mean(d_oh, c.obj_w, c.obj_share) + trimmed_mean(d_ho, c.body_w, c.body_share)

    def _penetration(self, moved: torch.Tensor) -> torch.Tensor:
        """Object points inside the body: signed distance from the nearest body vertex along its normal."""
        nn_b = self._match(
            "penetration",
            lambda: torch.from_numpy(self.body_tree.query(moved.detach().reshape(-1, 3).numpy())[1]),
            tuple(moved.shape[:2]),
        )
        signed = ((moved - self.body_v[nn_b]) * self.body_n[nn_b]).sum(-1)
        return torch.relu(-signed).mean(-1)

    def _image_terms(self, moved: torch.Tensor, rot: torch.Tensor, im: _ImageData) -> dict[str, torch.Tensor]:
        """Silhouette (inside the allowed region, every mask pixel covered) and depth order against the body."""
        uv, z = project(moved, self.k)
        # Pixel errors become metres at the object's depth, comparable with the 3D terms.
        metres_per_px = (z.detach().mean(-1, keepdim=True) / im.focal).clamp_min(1e-4)
        outside = sample_image(im.allowed_field, uv) * metres_per_px
        # Each mask pixel to its nearest projected point: the match is found without gradient (cdist's
        # backward over every pixel-point pair cost more than the rest of the step), the distance keeps it.
        mask_uv_np = im.mask_uv.numpy()
        nearest_px = self._match(
            "coverage",
            lambda: torch.from_numpy(
                np.stack([cKDTree(points).query(mask_uv_np)[1] for points in uv.detach().numpy()])
            ),
            (len(uv), len(mask_uv_np)),
        )
        matched_uv = torch.gather(uv, 1, nearest_px[..., None].expand(-1, -1, 2))
        coverage = (im.mask_uv[None] - matched_uv).norm(dim=-1) * metres_per_px
        # Depth order on front-facing points (facing the camera at the origin).
        normals = self.pts_n @ rot.transpose(-1, -2)
        front = (normals * moved).sum(-1) < 0
        with torch.no_grad():  # which rule applies is decided away from mask edges (2 px margin)
            core, near, person, body = sample_image(im.rule_maps, uv, 0.0)
            on_object, near_object, on_person, body_here = core > 0.5, near > 0.5, person > 0.5, body > 0.999
            body_z = sample_image(im.depth_filled, uv.round(), 0.0)  # nearest: no blending across depth edges
        ahead = front & on_object & body_here  # the photo shows the object over the body here
        behind = front & on_person & ~near_object & body_here  # the person hides the object here
        err = torch.where(ahead, torch.relu(z - body_z), torch.zeros_like(z)) + torch.where(
            behind, torch.relu(body_z - z), torch.zeros_like(z)
        )
        return {"silhouette": outside.mean(-1) + coverage.mean(-1), "depth": err.sum(-1) / front.sum(-1).clamp_min(1)}


def _skip_reason(body_contact: np.ndarray, object_contact: np.ndarray, options: PlacementOptions) -> str | None:
    """Why the object cannot be placed (no contact on one side), or None."""
    for which, contact, threshold in (
        ("body", body_contact, options.body_threshold),
        ("object", object_contact, options.object_threshold),
    ):
        if not (contact > threshold).any():
            return (
                f"no {which} vertex has contact above {threshold}: nothing says where the object touches the body, "
                "so the object was not placed (paint contacts on both and refit to place it)"
            )
    return None


def _icp_contacts(contacts: _Contacts, options: PlacementOptions, rng: np.random.Generator) -> _Contacts:
    """At most `options.icp_points` contact points a side, for the starts' ICP: it only has to bring each start near
    its basin, and its cost (every object point against every body point, per start and iteration) grows with both."""
    c = contacts
    pick_o = torch.from_numpy(_subsample(np.arange(len(c.obj_c)), options.icp_points, rng))
    pick_b = torch.from_numpy(_subsample(np.arange(len(c.body_c)), options.icp_points, rng))
    return _Contacts(c.obj_c[pick_o], c.obj_w[pick_o], c.body_c[pick_b], c.body_w[pick_b], c.obj_share, c.body_share)


def _icp_starts(small: _Contacts, options: PlacementOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """Starting rotations [2G, 3, 3] and translations [2G, 3]: the G group rotations, each moved onto the body
    contacts `small` (see `_icp_contacts`) by ICP starting with the contact centroids on top of each other, then the
    same rotations unchanged, moved onto the contacts by a translation-only ICP."""
    rotations = torch.tensor(start_rotations(options.dense_starts), dtype=torch.float32)
    icp_rotations, icp_translations = _icp_onto_contacts(small, rotations)
    # The group rotations kept as they are too, only moved onto the contacts: where the contact covers much of
    # the object (a seat and a backrest), ICP takes every start to the same pose and the search loses its spread.
    kept = _contact_translations(small, rotations, _centroids_on_top(small, rotations))
    return torch.cat([icp_rotations, rotations]), torch.cat([icp_translations, kept])


def _centroids_on_top(contacts: _Contacts, rotations: torch.Tensor) -> torch.Tensor:
    """Translations [B, 3] that put the turned object contacts' weighted centroid on the body contacts'."""
    c = contacts
    mu_o = (c.obj_w[:, None] * c.obj_c).sum(0) / c.obj_w.sum()
    mu_h = (c.body_w[:, None] * c.body_c).sum(0) / c.body_w.sum()
    return mu_h[None] - (rotations @ mu_o)


def _icp_onto_contacts(contacts: _Contacts, rotations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotations [B, 3, 3] and translations [B, 3] after ICP from `rotations`, the contact centroids on top of each
    other at the start."""
    c = contacts
    icp = contact_icp(
        c.obj_c, c.obj_w, c.body_c, c.body_w, rotations, _centroids_on_top(c, rotations), share=c.obj_share
    )
    return icp.rotation, icp.translation


def _turned_starts(contacts: _Contacts, rotation: torch.Tensor, turns: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`rotation` [3, 3] turned `turns` times evenly about the camera's vertical axis (CV_CAMERA y), each moved
    onto the contacts by ICP: rotations [turns, 3, 3] and translations [turns, 3] (none for turns 0)."""
    if turns <= 0:
        return rotation.new_zeros((0, 3, 3)), rotation.new_zeros((0, 3))
    angles = np.arange(turns) * (2 * np.pi / turns)
    about_y = torch.tensor(Rotation.from_euler("y", angles[:, None]).as_matrix(), dtype=rotation.dtype)
    return _icp_onto_contacts(contacts, about_y @ rotation)


def _iou_term(
    inputs: PlacementInputs, options: PlacementOptions, centre: np.ndarray, k: torch.Tensor, body_depth: torch.Tensor
) -> Callable[..., torch.Tensor]:
    """1 - soft IoU [B] of the decimated object's visible silhouette with the object mask, per hypothesis."""
    mask = inputs.object_mask
    assert mask is not None  # the image evidence, and so this term, exists only with an object mask
    window = mask_window(mask, body_depth)
    local = np.asarray(inputs.object_mesh.vertices, np.float64)
    coarse_v, coarse_f = decimated_faces(local, np.asarray(inputs.object_mesh.faces), options.iou_faces)
    coarse = torch.tensor(coarse_v - centre, dtype=torch.float32)
    coarse_faces = torch.from_numpy(coarse_f)

    def iou(d6: torch.Tensor, trans: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
        moved = log_scale.exp()[:, None, None] * coarse @ rotation_6d_to_matrix(d6).transpose(-1, -2)
        uv, z = project(moved + trans[:, None], k)
        return soft_iou_loss(uv, z, coarse_faces, window, options.iou_blur_px)

    return iou


def _best_by_total(
    score: Callable[..., torch.Tensor], rotations: torch.Tensor, translations: torch.Tensor, count: int
) -> torch.Tensor:
    """Indices of the `count` starts with the lowest `score` (the total loss, with a mask also the IoU term)."""
    with torch.no_grad():
        d6 = matrix_to_rotation_6d(rotations)
        first = torch.cat(
            [  # in chunks: the coverage term compares every mask pixel with every object point
                score(d6[i : i + 16], translations[i : i + 16], d6.new_zeros(len(d6[i : i + 16])))
                for i in range(0, len(d6), 16)
            ]
        )
    return torch.argsort(first)[:count]


def _without_repeats(
    rotations: torch.Tensor, translations: torch.Tensor, max_angle_deg: float, max_shift: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The starts (rotations [N, 3, 3], translations [N, 3]) less each one within `max_angle_deg` and `max_shift`
    (metres) of an earlier one kept; the first always stays.

    Why: ICP takes many group rotations into one basin (README: placement, how many), and scoring each start costs
    as much as a step.
    """
    cos_limit = float(np.cos(np.radians(max_angle_deg)))
    cos = (torch.einsum("aij,bij->ab", rotations, rotations) - 1.0) / 2.0  # (trace(A^T B) - 1) / 2
    near = (cos > cos_limit) & (torch.cdist(translations, translations) < max_shift)
    taken: list[int] = []
    for i in range(len(rotations)):
        if not taken or not bool(near[i, taken].any()):
            taken.append(i)
    index = torch.tensor(taken, dtype=torch.long)
    return rotations[index], translations[index]


def _including(indices: torch.Tensor, must: int | None) -> torch.Tensor:
    """`indices` with `must` (the given start's index, when there is one) among them, in place of the last."""
    if must is None or must in indices.tolist():
        return indices
    return torch.cat([indices.new_full((1,), must), indices[:-1]])


def _principal_axes(points: np.ndarray) -> torch.Tensor:
    """The principal axes [3, 3] (rows, unit) of points [S, 3]: an axially symmetric object's axis is one of them."""
    spread = points - points.mean(0)
    return torch.tensor(np.linalg.eigh(spread.T @ spread)[1].T.copy(), dtype=torch.float32)


def _contact_translations(
    contacts: _Contacts, rotations: torch.Tensor, translations: torch.Tensor, iterations: int = 3
) -> torch.Tensor:
    """Translations [B, 3] from `translations` by a translation-only ICP of the turned object contact points onto the
    body's (each to its nearest, weighted by both contact values): the rotation stays as given."""
    c = contacts
    tree = cKDTree(c.body_c.numpy())
    turned = c.obj_c @ rotations.transpose(-1, -2)  # [B, M, 3]
    for _ in range(iterations):
        moved = turned + translations[:, None]
        nearest = torch.from_numpy(tree.query(moved.reshape(-1, 3).numpy())[1]).reshape(moved.shape[:2])
        w = trimmed_weights(c.obj_w[None] * c.body_w[nearest], (c.body_c[nearest] - moved).norm(dim=-1), c.obj_share)
        shift = (w[..., None] * (c.body_c[nearest] - moved)).sum(1) / w.sum(1, keepdim=True).clamp_min(1e-12)
        translations = translations + shift
    return translations


def _turn_search(
    options: PlacementOptions,
    count: int,
    score: Callable[..., torch.Tensor],
    contacts: _Contacts,
    axes: torch.Tensor,
    d6: torch.Tensor,
    trans: torch.Tensor,
    log_scale: torch.Tensor,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The best `count` turns of the hypotheses (6D [B, 6], translations [B, 3], log scales [B]): each
    turned about its own centre by each of `options.turn_angles_deg` about each principal axis `axes` [3, 3] (rows,
    object frame), put back on the contacts, and scored by `score` (no gradient). Returns (d6 [T, 6], translation
    [T, 3], log scale [T], index of the hypothesis each came from [T]), best first, at least
    `options.turn_separation_deg` apart and from the unturned hypotheses.

    Why: where the contact patch fits the body in several ways (a mug's wall against a palm, turned about the
    mug's axis or tilted) the loss is nearly flat along the turn and gradient steps do not leave the basin they
    start in; discrete turns, judged with the silhouette's overlap, jump to the other basins.
    """
    with torch.no_grad():
        angles = torch.tensor(options.turn_angles_deg, dtype=torch.float32).deg2rad()
        rotvecs = (axes[:, None, :] * angles[None, :, None]).reshape(-1, 3)  # [3A, 3] in the object frame
        turns = torch.tensor(Rotation.from_rotvec(rotvecs.double().numpy()).as_matrix(), dtype=torch.float32)
        rotation = rotation_6d_to_matrix(d6)  # [B, 3, 3]
        candidates = (rotation[:, None] @ turns[None]).reshape(-1, 3, 3)  # R' = R Q: turned about the centre
        origin = torch.arange(len(d6)).repeat_interleave(len(turns))
        scale = log_scale[origin]
        pick = torch.from_numpy(_subsample(np.arange(len(contacts.obj_c)), options.icp_points, rng))
        small = replace(contacts, obj_c=contacts.obj_c[pick], obj_w=contacts.obj_w[pick])
        moved = _contact_translations(small, candidates * scale.exp()[:, None, None], trans[origin])
        cand_d6 = matrix_to_rotation_6d(candidates)
        scores = torch.cat(
            [score(cand_d6[i : i + 16], moved[i : i + 16], scale[i : i + 16]) for i in range(0, len(cand_d6), 16)]
        )
        taken = _separated(torch.argsort(scores), candidates, rotation, count, options.turn_separation_deg)
    return cand_d6[taken], moved[taken], scale[taken], origin[taken]


def _separated(
    order: torch.Tensor, rotations: torch.Tensor, avoid: torch.Tensor, count: int, min_angle_deg: float
) -> torch.Tensor:
    """The first `count` of `order` (indices into rotations [N, 3, 3]) at least `min_angle_deg` from each other and
    from every rotation in `avoid` [K, 3, 3]."""
    cos_limit = float(np.cos(np.radians(min_angle_deg)))
    taken: list[int] = []
    for i in order.tolist():
        others = torch.cat([avoid, rotations[taken]]) if taken else avoid
        cos = ((others * rotations[i]).sum((-1, -2)) - 1.0) / 2.0  # (trace(A^T B) - 1) / 2
        if bool((cos > cos_limit).any()):
            continue
        taken.append(i)
        if len(taken) == count:
            break
    return torch.tensor(taken, dtype=torch.long)


def _placed_points(
    points: torch.Tensor, d6: torch.Tensor, trans: torch.Tensor, log_scale: torch.Tensor
) -> torch.Tensor:
    """The centred object's points [S, 3] placed by each hypothesis: [B, S, 3]."""
    rotation = rotation_6d_to_matrix(d6.detach())
    return log_scale.detach().exp()[:, None, None] * points @ rotation.transpose(-1, -2) + trans.detach()[:, None]


def _distinct(order: torch.Tensor, placed: torch.Tensor, count: int, min_distance: float) -> torch.Tensor:
    """The first `count` of `order` (indices into placed [B, S, 3]) whose surfaces are at least `min_distance` apart
    (metres, the mean distance from each point to the other placement's nearest point, both ways averaged); when
    fewer are that far apart, the rest of `order` fills up.

    Why surfaces and not rotation angles: an object that looks the same turned (a cylinder about its axis, a box
    by half a turn) gives many hypotheses far apart in rotation that are one pose, which would take every slot."""
    taken: list[int] = []
    for i in order.tolist():
        near = torch.cdist(placed[i][None], placed[taken]) if taken else None
        if near is not None and bool(((near.amin(-1).mean(-1) + near.amin(-2).mean(-1)) / 2 < min_distance).any()):
            continue
        taken.append(i)
        if len(taken) == count:
            break
    rest = [i for i in order.tolist() if i not in taken][: count - len(taken)]
    return torch.tensor(taken + rest, dtype=torch.long)


def place_object(
    inputs: PlacementInputs, options: PlacementOptions = PlacementOptions(), initial: np.ndarray | None = None
) -> ObjectPlacement:
    """Places the object against the body; never raises for a placement that cannot be made, it skips.

    Phases (see the module docstring): prepare the terms; starts; coarse; optimise; turns and refine (with a
    mask). Deterministic for a given `options.seed` (on one machine).
    """
    _check_inputs(inputs)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    rng = np.random.default_rng(options.seed)
    body_contact = np.clip(np.asarray(inputs.body_contact, np.float64), 0, 1)
    object_contact = np.clip(np.asarray(inputs.object_contact, np.float64), 0, 1)
    reason = _skip_reason(body_contact, object_contact, options)
    if reason is not None:
        return ObjectPlacement("skipped", reason)

    dtype = torch.float32
    local = np.asarray(inputs.object_mesh.vertices, np.float64)
    centre = local.mean(0)
    size = float(np.linalg.norm(np.ptp(local, axis=0)))  # steps in proportion to the object: a mug moves in mm
    body_v = torch.tensor(inputs.body_vertices, dtype=dtype)
    body_n = vertex_normals(body_v, torch.tensor(inputs.body_faces))
    contacts = _contacts(inputs, options, body_contact, object_contact, centre, rng)

    # Search: starting poses, the best few by the full loss.
    small = _icp_contacts(contacts, options, rng)
    rotations, translations = _icp_starts(small, options)
    if initial is not None:  # a given camera_from_object joins the starts (refits from a previous placement)
        given_rotation = torch.tensor(initial[:3, :3], dtype=dtype)
        given_translation = torch.tensor(initial[:3, :3] @ centre + initial[:3, 3], dtype=dtype)
        turned, turned_translations = _turned_starts(small, given_rotation, options.initial_turns)
        rotations = torch.cat([given_rotation[None], turned, rotations])
        translations = torch.cat([given_translation[None], turned_translations, translations])
    rotations, translations = _without_repeats(
        rotations, translations, options.repeat_angle_deg, options.repeat_share * size
    )
    timings["init"] = time.perf_counter() - start

    t0 = time.perf_counter()
    points, normals = object_surface_samples(local - centre, np.asarray(inputs.object_mesh.faces), options, rng)
    k = torch.tensor(inputs.intrinsics, dtype=dtype)
    images = _image_data(inputs, options, rng)
    points_t = torch.tensor(points, dtype=dtype)
    terms_of = _Terms(
        options,
        contacts,
        points_t,
        torch.tensor(normals, dtype=dtype),
        body_v,
        body_n,
        cKDTree(inputs.body_vertices, leafsize=32),  # faster queries than the default 16 on a body's 10k vertices
        images,
        k,
    )
    iou = _iou_term(inputs, options, centre, k, images.body_depth) if images is not None else None
    iou_weight = options.w_iou * size

    def total_with_iou(*state: torch.Tensor) -> torch.Tensor:
        total = terms_of.total(terms_of(*state))
        return total if iou is None else total + iou_weight * iou(*state)

    # Starts ranked with the silhouette's overlap too (the contact alone often fits several ways: a cup's wall
    # against a palm, a seat on a lap); the best distinct ones optimised briefly (coarse), ranked again with it.
    def plain_total(*state: torch.Tensor) -> torch.Tensor:
        return terms_of.total(terms_of(*state))

    score = total_with_iou if options.score_starts_with_iou else plain_total
    order = _best_by_total(score, rotations, translations, len(rotations))
    count = options.coarse_hypotheses if options.coarse_steps > 0 else options.keep_hypotheses
    keep = _separated(order, rotations, rotations[:0], count, options.start_separation_deg)
    keep = _including(keep, 0 if initial is not None else None)
    d6, trans, log_scale = matrix_to_rotation_6d(rotations[keep]), translations[keep], torch.zeros(len(keep))
    if options.coarse_steps > 0:
        with terms_of.reusing_matches(options.match_every):
            d6, trans, log_scale = _optimise(
                options, size, plain_total, d6, trans, log_scale, options.coarse_steps, halve_at=options.coarse_halve_at
            )
        given = int(torch.nonzero(keep == 0)[0]) if initial is not None else None
        with torch.no_grad():
            placed = _placed_points(points_t[: options.distinct_points], d6, trans, log_scale)
            order = torch.argsort(score(d6, trans, log_scale))
            best = _distinct(order, placed, options.keep_hypotheses, options.distinct_share * size)
            best = _including(best, given)
        d6, trans, log_scale, keep = d6[best], trans[best], log_scale[best], keep[best]

    # Optimise the kept hypotheses together.
    with terms_of.reusing_matches(options.match_every):
        d6, trans, log_scale = _optimise(options, size, plain_total, d6, trans, log_scale, options.steps)
    with torch.no_grad():
        terms = terms_of(d6, trans, log_scale)
        total = terms_of.total(terms)
    timings["optimise"] = time.perf_counter() - t0

    if images is not None and options.refine_hypotheses > 0:
        # Turns, then the refinement: the best few, optimised again with the area-overlap term added, and ranked
        # with it.
        t0 = time.perf_counter()
        assert iou is not None
        with torch.no_grad():  # ranked with the IoU: the loss without it can prefer a cylinder lying across the palm
            order = torch.argsort(score(d6, trans, log_scale))
            placed = _placed_points(points_t[: options.distinct_points], d6, trans, log_scale)
            order = _distinct(order, placed, len(order), options.distinct_share * size)  # distinct poses first
        d6, trans, log_scale, keep = d6[order], trans[order], log_scale[order], keep[order]
        turn_count = min(options.turn_keep, options.refine_hypotheses - 1)  # the best hypothesis always stays
        if turn_count > 0 and options.turn_hypotheses > 0:
            turns = _turn_search(
                options,
                turn_count,
                total_with_iou,
                contacts,
                _principal_axes(points),
                d6[: options.turn_hypotheses],
                trans[: options.turn_hypotheses],
                log_scale[: options.turn_hypotheses],
                rng,
            )
            kept = options.refine_hypotheses - len(turns[0])
            d6, trans, log_scale = (torch.cat([a[:kept], b]) for a, b in zip((d6, trans, log_scale), turns[:3]))
            keep = torch.cat([keep[:kept], keep[turns[3]]])
        else:
            d6, trans, log_scale, keep = (a[: options.refine_hypotheses] for a in (d6, trans, log_scale, keep))
        timings["turns"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with terms_of.reusing_matches(options.match_every):
            d6, trans, log_scale = _optimise(
                options,
                size,
                total_with_iou,
                d6,
                trans,
                log_scale,
                options.refine_steps,
                options.refine_lr_share,
                options.refine_halve_at,
            )
        with torch.no_grad():
            terms = terms_of(d6, trans, log_scale)
            terms["iou"] = iou(d6, trans, log_scale)
            terms_of.weights["iou"] = iou_weight
            total = terms_of.total(terms)
        timings["refine"] = time.perf_counter() - t0
    return _result(terms, total, d6, trans, log_scale, centre, keep, images is not None, timings)


def _result(
    terms: dict[str, torch.Tensor],
    total: torch.Tensor,
    d6: torch.Tensor,
    trans: torch.Tensor,
    log_scale: torch.Tensor,
    centre: np.ndarray,
    keep: torch.Tensor,
    have_masks: bool,
    timings: dict[str, float],
) -> ObjectPlacement:
    """The lowest-total hypothesis as the placement, with every optimised one as a candidate."""
    best = int(total.argmin())

    def transform_of(i: int) -> np.ndarray:
        rot = rotation_6d_to_matrix(d6.detach()[i]).double().numpy()
        out = np.eye(4)
        out[:3, :3] = float(log_scale.detach()[i].exp()) * rot
        out[:3, 3] = trans.detach()[i].double().numpy() - out[:3, :3] @ centre
        return out

    result_losses = {name: float(value[best]) for name, value in terms.items()}
    result_losses["total"] = float(total[best])
    return ObjectPlacement(
        "placed",
        "placed by contact, silhouette, penetration and depth-order terms"
        if have_masks
        else "placed by contact and penetration terms only (no object mask was available)",
        camera_from_object=transform_of(best),
        scale=float(log_scale.detach()[best].exp()),
        losses=result_losses,
        hypotheses=d6.shape[0],
        chosen_hypothesis=int(keep[best]),
        timings_s=timings,
        candidates=[(transform_of(int(i)), float(total[i])) for i in torch.argsort(total)],
    )
