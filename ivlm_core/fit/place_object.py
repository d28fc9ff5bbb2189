"""Placing the user's object against the fitted body: rotation (6D), translation, optional scale.

Everything happens in the photo's CV_CAMERA frame (metres, camera at the origin, see `ivlm_core.frames`).
The result is `camera_from_object`, a 4x4 acting on column vectors that takes the object's own local
vertices (as the client sent them) into that frame; with scale optimised its 3x3 block is s*R.

Terms (each reported separately):
- contact: contact-weighted distance from object contact points to their nearest body contact point and
  back (InteractVLM's term uses all pairs; nearest neighbours keep the cost linear and do not pull every
  contact point towards the centre of the other patch);
- silhouette: projected object points must fall inside the object mask or behind the person (distance
  field of object-or-person mask), and every object-mask pixel must be near a projected object point;
- penetration: object points inside the body (signed distance from the nearest body vertex and its normal);
- depth order: where the photo shows the object over the body, the object is in front, and where the
  person hides the object, the object is behind (front-facing object points against the body's depth map).

Initialisation: 83 rotations spread over the sphere (cube and icosahedral groups), each moved onto the body contacts by
a real ICP (correspondences re-found every iteration), all scored on the full loss, the best few optimised
together as one batch. Refinement (with an object mask): the best four are optimised again with a soft
silhouette IoU term added (`silhouette_iou`: the visible silhouette against the mask), and the lowest total
loss, IoU term included, wins. Why a second stage: the distance-field silhouette is cheap but blind to a few
degrees of tilt or spin (its minimum can sit 10 degrees off the truth); the IoU is exact at the truth but
costs a soft rasterisation per step, so it only sees the few hypotheses that are left.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.ndimage import binary_dilation, binary_erosion
from scipy.spatial import cKDTree

from ivlm_core.errors import BadInputError
from ivlm_core.fit.image_terms import distance_field, project, sample_image
from ivlm_core.fit.procrustes import contact_icp
from ivlm_core.fit.rotations import matrix_to_rotation_6d, rotation_6d_to_matrix, start_rotations
from ivlm_core.fit.silhouette_iou import decimated_faces, mask_window, soft_iou_loss
from ivlm_core.mesh import TriangleMesh, validate_mesh
from ivlm_core.render.cameras import PinholeCameras
from ivlm_core.render.renderer import rasterize_mesh
from ivlm_core.render.shading import vertex_normals

BODY_CONTACT_THRESHOLD = 0.5  # InteractVLM's fitter: human contact points are prob > 0.5
OBJECT_CONTACT_THRESHOLD = 0.3  # and object contact points prob > 0.3


@dataclass(frozen=True)
class PlacementOptions:
    body_threshold: float = BODY_CONTACT_THRESHOLD
    object_threshold: float = OBJECT_CONTACT_THRESHOLD
    steps: int = 60
    lr_rotation: float = 0.02
    lr_translation: float = 0.02  # times the object's diagonal
    optimise_scale: bool = False
    lr_scale: float = 0.01
    max_object_points: int = 1500  # surface samples used by the image and penetration terms
    max_contact_points: int = 600
    max_mask_pixels: int = 400
    keep_hypotheses: int = 8  # after ICP, the best this many are optimised
    dense_starts: bool = True  # 83 starting rotations (cube + icosahedral groups) instead of 24
    contact_tolerance_m: float = 0.015  # contact labels mark a shell about a centimetre thick, not touching points
    w_contact: float = 1.0
    w_silhouette: float = 1.0
    w_penetration: float = 2.0
    w_depth: float = 1.0
    # Refinement: the best few hypotheses optimised again with a soft silhouette IoU term, which ranks them too.
    refine_hypotheses: int = 4
    refine_steps: int = 40
    refine_lr_share: float = 0.5  # learning rates of the refinement, as a share of the first stage's
    w_iou: float = 0.1  # times the object's diagonal: (1 - IoU) becomes metres like the other terms
    iou_faces: int = 3000  # the object is decimated to about this many faces for the soft silhouette
    iou_blur_px: float = 1.0
    seed: int = 0


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
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    pick = rng.choice(
        len(chosen), size=max(count - len(vertex_idx), 0), p=area / area.sum() if area.sum() > 0 else None
    )
    r1, r2 = np.sqrt(rng.random(len(pick))), rng.random(len(pick))
    bary = np.stack([1 - r1, r1 * (1 - r2), r1 * r2], -1)
    points = (bary[..., None] * tri[pick]).sum(1)
    weights = (bary * contact[chosen[pick]]).sum(1)
    return np.concatenate([vertices[vertex_idx], points]), np.concatenate([contact[vertex_idx], weights])


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
    options: PlacementOptions, size: float, total_of: Callable[..., torch.Tensor],
    d6: torch.Tensor, trans: torch.Tensor, log_scale: torch.Tensor, steps: int, lr_share: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Adam over a batch of hypotheses (6D rotation, translation, log scale), each keeping its lowest-loss state.

    Why the lowest state and not the last: Adam's last steps on a flat valley (a mug's spin when its handle is
    hidden) can end higher than where it has been. `size` (the object's diagonal) scales the translation steps.
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

    def remember(total: torch.Tensor) -> None:
        better = total.detach() < best_total
        best_total[better] = total.detach()[better]
        for kept, now in zip(best, (d6, trans, log_scale)):
            kept[better] = now.detach()[better]

    for _ in range(steps):
        optimiser.zero_grad()
        total = total_of(d6, trans, log_scale)
        remember(total)
        total.sum().backward()
        optimiser.step()
        schedule.step()
    with torch.no_grad():
        remember(total_of(d6, trans, log_scale))
    return best[0], best[1], best[2]


def place_object(
    inputs: PlacementInputs, options: PlacementOptions = PlacementOptions(), initial: np.ndarray | None = None
) -> ObjectPlacement:
    """Places the object against the body; never raises for a placement that cannot be made, it skips."""
    _check_inputs(inputs)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    rng = np.random.default_rng(options.seed)
    body_contact = np.clip(np.asarray(inputs.body_contact, np.float64), 0, 1)
    object_contact = np.clip(np.asarray(inputs.object_contact, np.float64), 0, 1)
    body_idx = np.flatnonzero(body_contact > options.body_threshold)
    object_idx = np.flatnonzero(object_contact > options.object_threshold)
    if len(body_idx) == 0 or len(object_idx) == 0:
        which = "body" if len(body_idx) == 0 else "object"
        threshold = options.body_threshold if which == "body" else options.object_threshold
        return ObjectPlacement(
            "skipped",
            f"no {which} vertex has contact above {threshold}: nothing says where the object touches the body, "
            "so the object was not placed (paint contacts on both and refit to place it)",
        )

    dtype = torch.float32
    local = np.asarray(inputs.object_mesh.vertices, np.float64)
    centre = local.mean(0)
    centred = torch.tensor(local - centre, dtype=dtype)
    obj_normals = vertex_normals(centred, torch.tensor(inputs.object_mesh.faces))
    body_v = torch.tensor(inputs.body_vertices, dtype=dtype)
    body_n = vertex_normals(body_v, torch.tensor(inputs.body_faces))

    object_idx = _subsample(object_idx, options.max_contact_points, rng)
    obj_c = centred[object_idx]
    obj_w = torch.tensor(object_contact[object_idx], dtype=dtype)
    body_points, body_weights = contact_surface_samples(
        inputs.body_vertices, inputs.body_faces, body_contact, options.body_threshold, options.max_contact_points, rng
    )
    body_c = torch.tensor(body_points, dtype=dtype)
    body_w = torch.tensor(body_weights, dtype=dtype)

    # ICP from every cube rotation, each starting with the contact centroids on top of each other.
    rotations = torch.tensor(start_rotations(options.dense_starts), dtype=dtype)
    mu_o = (obj_w[:, None] * obj_c).sum(0) / obj_w.sum()
    mu_h = (body_w[:, None] * body_c).sum(0) / body_w.sum()
    translations = mu_h[None] - (rotations @ mu_o)
    icp = contact_icp(obj_c, obj_w, body_c, body_w, rotations, translations)
    if initial is not None:  # a given camera_from_object joins the starts (refits from a previous placement)
        given_rotation = torch.tensor(initial[:3, :3], dtype=dtype)
        given_translation = torch.tensor(initial[:3, :3] @ centre + initial[:3, 3], dtype=dtype)
        icp.rotation = torch.cat([given_rotation[None], icp.rotation])
        icp.translation = torch.cat([given_translation[None], icp.translation])
        icp.rms = torch.cat([icp.rms.new_zeros(1), icp.rms])
    timings["init"] = time.perf_counter() - start

    # Optimise the kept hypotheses together.
    t0 = time.perf_counter()
    sample_idx = _subsample(np.arange(len(local)), options.max_object_points, rng)
    pts = centred[sample_idx]
    pts_n = obj_normals[sample_idx]
    k = torch.tensor(inputs.intrinsics, dtype=dtype)
    body_tree = cKDTree(inputs.body_vertices)
    body_contact_tree = cKDTree(body_c.numpy())
    object_contact_tree = cKDTree(obj_c.numpy())
    have_masks = inputs.object_mask is not None and inputs.object_mask.any()
    if have_masks:
        person = inputs.person_mask if inputs.person_mask is not None else np.zeros(inputs.image_size, bool)
        allowed_field = distance_field(inputs.object_mask | person)
        mask_rows, mask_cols = np.nonzero(inputs.object_mask)
        pick = _subsample(np.arange(len(mask_rows)), options.max_mask_pixels, rng)
        mask_uv = torch.tensor(np.stack([mask_cols[pick], mask_rows[pick]], -1), dtype=dtype)
        mask_uv_np = mask_uv.numpy()
        focal = float(inputs.intrinsics[0, 0] + inputs.intrinsics[1, 1]) / 2
        body_depth = _body_depth(inputs)
        body_there = torch.isfinite(body_depth)
        depth_filled = torch.where(body_there, body_depth, torch.zeros_like(body_depth))
        object_core = torch.from_numpy(binary_erosion(inputs.object_mask, iterations=2).astype(np.float32))
        object_near = torch.from_numpy(binary_dilation(inputs.object_mask, iterations=2).astype(np.float32))
        person_core = torch.from_numpy(binary_erosion(person, iterations=2).astype(np.float32))

    iou: Callable[..., torch.Tensor] | None = None
    if have_masks and options.refine_hypotheses > 0:
        window = mask_window(inputs.object_mask, body_depth)
        coarse_v, coarse_f = decimated_faces(local, np.asarray(inputs.object_mesh.faces), options.iou_faces)
        coarse = torch.tensor(coarse_v - centre, dtype=dtype)
        coarse_faces = torch.from_numpy(coarse_f)

        def iou(d6: torch.Tensor, trans: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
            """1 - soft IoU of the decimated object's silhouette with the object mask, per hypothesis."""
            moved = log_scale.exp()[:, None, None] * coarse @ rotation_6d_to_matrix(d6).transpose(-1, -2)
            uv, z = project(moved + trans[:, None], k)
            return soft_iou_loss(uv, z, coarse_faces, window, options.iou_blur_px)

    def losses(d6: torch.Tensor, trans: torch.Tensor, log_scale: torch.Tensor) -> dict[str, torch.Tensor]:
        rot = rotation_6d_to_matrix(d6)
        scale = log_scale.exp()[:, None, None]
        moved_c = scale * obj_c @ rot.transpose(-1, -2) + trans[:, None]  # [B, M, 3]
        moved = scale * pts @ rot.transpose(-1, -2) + trans[:, None]  # [B, S, 3]
        out: dict[str, torch.Tensor] = {}
        # Contact, both ways: each object contact point to the nearest body contact point and back (nearest
        # neighbours found without gradient, distances differentiable). Matching contact to contact, not to
        # any surface, keeps the information in where each patch lies (a mug's grip side, not just its wall).
        with torch.no_grad():
            nn_h = torch.from_numpy(body_contact_tree.query(moved_c.detach().reshape(-1, 3).numpy())[1]).reshape(
                moved_c.shape[:2]
            )
            body_in_object = (body_c[None] - trans.detach()[:, None]) @ rot.detach() / scale.detach()
            nn_o = torch.from_numpy(object_contact_tree.query(body_in_object.reshape(-1, 3).numpy())[1]).reshape(
                body_in_object.shape[:2]
            )
        d_oh = (moved_c - body_c[nn_h]).norm(dim=-1)
        d_ho = (body_c[None] - torch.gather(moved_c, 1, nn_o[..., None].expand(-1, -1, 3))).norm(dim=-1)
        d_oh, d_ho = torch.relu(d_oh - options.contact_tolerance_m), torch.relu(d_ho - options.contact_tolerance_m)
        out["contact"] = (d_oh * obj_w).sum(-1) / obj_w.sum() + (d_ho * body_w).sum(-1) / body_w.sum()
        # Penetration: signed distance from the nearest body vertex along its normal.
        with torch.no_grad():
            nn_b = torch.from_numpy(body_tree.query(moved.detach().reshape(-1, 3).numpy())[1]).reshape(moved.shape[:2])
        signed = ((moved - body_v[nn_b]) * body_n[nn_b]).sum(-1)
        out["penetration"] = torch.relu(-signed).mean(-1)
        if have_masks:
            uv, z = project(moved, k)
            # Pixel errors become metres at the object's depth, comparable with the 3D terms.
            metres_per_px = (z.detach().mean(-1, keepdim=True) / focal).clamp_min(1e-4)
            outside = sample_image(allowed_field, uv) * metres_per_px
            # Each mask pixel to its nearest projected point: the match is found without gradient (cdist's
            # backward over every pixel-point pair cost more than the rest of the step), the distance keeps it.
            nearest_px = torch.from_numpy(
                np.stack([cKDTree(points).query(mask_uv_np)[1] for points in uv.detach().numpy()])
            )
            matched_uv = torch.gather(uv, 1, nearest_px[..., None].expand(-1, -1, 2))
            coverage = (mask_uv[None] - matched_uv).norm(dim=-1) * metres_per_px
            out["silhouette"] = outside.mean(-1) + coverage.mean(-1)
            # Depth order on front-facing points (facing the camera at the origin).
            normals = pts_n @ rot.transpose(-1, -2)
            front = (normals * moved).sum(-1) < 0
            with torch.no_grad():  # which rule applies is decided away from mask edges (2 px margin)
                on_object = sample_image(object_core, uv, 0.0) > 0.5
                near_object = sample_image(object_near, uv, 0.0) > 0.5
                on_person = sample_image(person_core, uv, 0.0) > 0.5
                body_here = sample_image(body_there.float(), uv, 0.0) > 0.999
                body_z = sample_image(depth_filled, uv.round(), 0.0)  # nearest: no blending across depth edges
            ahead = front & on_object & body_here  # the photo shows the object over the body here
            behind = front & on_person & ~near_object & body_here  # the person hides the object here
            err = torch.where(ahead, torch.relu(z - body_z), torch.zeros_like(z)) + torch.where(
                behind, torch.relu(body_z - z), torch.zeros_like(z)
            )
            out["depth"] = err.sum(-1) / front.sum(-1).clamp_min(1)
        return out

    weights = {
        "contact": options.w_contact,
        "penetration": options.w_penetration,
        "silhouette": options.w_silhouette,
        "depth": options.w_depth,
    }

    def total_of(terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(weights[name] * value for name, value in terms.items())

    # Every start is scored on the full loss after ICP; the best few are optimised together.
    with torch.no_grad():
        all_d6 = matrix_to_rotation_6d(icp.rotation)
        first = torch.cat(
            [  # in chunks: the coverage term compares every mask pixel with every object point
                total_of(
                    losses(all_d6[i : i + 16], icp.translation[i : i + 16], icp.rms.new_zeros(len(all_d6[i : i + 16])))
                )
                for i in range(0, len(all_d6), 16)
            ]
        )
    keep = torch.argsort(first)[: options.keep_hypotheses]
    if initial is not None and 0 not in keep.tolist():
        keep = torch.cat([keep.new_zeros(1), keep[:-1]])
    size = float(np.linalg.norm(np.ptp(local, axis=0)))  # steps in proportion to the object: a mug moves in mm
    d6, trans, log_scale = _optimise(
        options,
        size,
        lambda *state: total_of(losses(*state)),
        matrix_to_rotation_6d(icp.rotation[keep]),
        icp.translation[keep],
        torch.zeros(len(keep), dtype=dtype),
        options.steps,
    )
    with torch.no_grad():
        terms = losses(d6, trans, log_scale)
        total = total_of(terms)
    timings["optimise"] = time.perf_counter() - t0

    if iou is not None:  # set only with masks and refine_hypotheses > 0
        # Refinement: the best few, optimised again with the area-overlap term added, and ranked with it.
        t0 = time.perf_counter()
        chosen = torch.argsort(total)[: options.refine_hypotheses]
        keep = keep[chosen]
        iou_weight = options.w_iou * size

        def refined_total(*state: torch.Tensor) -> torch.Tensor:
            return total_of(losses(*state)) + iou_weight * iou(*state)

        d6, trans, log_scale = _optimise(
            options,
            size,
            refined_total,
            d6[chosen],
            trans[chosen],
            log_scale[chosen],
            options.refine_steps,
            options.refine_lr_share,
        )
        with torch.no_grad():
            terms = losses(d6, trans, log_scale)
            terms["iou"] = iou(d6, trans, log_scale)
            weights["iou"] = iou_weight
            total = total_of(terms)
        timings["refine"] = time.perf_counter() - t0
    best = int(total.argmin())

    def transform_of(i: int) -> np.ndarray:
        rot = rotation_6d_to_matrix(d6.detach()[i]).double().numpy()
        out = np.eye(4)
        out[:3, :3] = float(log_scale.detach()[i].exp()) * rot
        out[:3, 3] = trans.detach()[i].double().numpy() - out[:3, :3] @ centre
        return out

    transform = transform_of(best)
    scale = float(log_scale.detach()[best].exp())
    candidates = [(transform_of(int(i)), float(total[i])) for i in torch.argsort(total)]
    result_losses = {name: float(value[best]) for name, value in terms.items()}
    result_losses["total"] = float(total[best])
    result_losses["icp_rms_m"] = float(icp.rms[keep[best]])
    return ObjectPlacement(
        "placed",
        "placed by contact, silhouette, penetration and depth-order terms"
        if have_masks
        else "placed by contact and penetration terms only (no object mask was available)",
        camera_from_object=transform,
        scale=scale,
        losses=result_losses,
        hypotheses=d6.shape[0],
        chosen_hypothesis=int(keep[best]),
        timings_s=timings,
        candidates=candidates,
    )
