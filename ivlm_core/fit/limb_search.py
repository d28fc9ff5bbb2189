"""Re-seeding a converged body fit limb by limb: depth flips and canonical limb postures.

Gradient descent on 2D keypoints settles a limb in whichever depth branch it reached first: an arm held
towards the camera and one held away project alike, and an arm that rose sideways from its start cannot
swing forwards without first fitting worse. So after the first fit, each limb gets variants, every other
part of the body left as it is:
- depth flips: one segment (upper limb, lower limb, hand/foot, or both long segments) turned to its mirror
  image about the plane through its joint perpendicular to the camera ray, which keeps its 2D projection;
- canonical postures: the limb put in one of a few typical configurations (arm down, forward, bent forward,
  raised, out to the side, reaching down; leg straight, seated, kneeling, squatting, raised forward), given
  in the frame of the joint the limb hangs from.
The variants are screened briefly, each limb's best improvement combined into one fit, and after a proper
optimisation the lowest total loss wins (`body_fit._refine_limbs`).

Rotations: SMPL-X joints turn in the rest frame, so a joint's global rotation is its parent's times its own,
and setting a segment's direction means turning the joint's global rotation by the smallest rotation between
the segment's current and wanted directions. Segments after a changed one keep their camera-frame direction.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from smplx.lbs import batch_rodrigues

# Limb chains: joint indices; each joint turns the segment to the next.
CHAINS = {
    "left arm": (16, 18, 20, 28),
    "right arm": (17, 19, 21, 43),
    "left leg": (1, 4, 7, 10),
    "right leg": (2, 5, 8, 11),
}
FLIPS = ((0,), (1,), (2,), (0, 1))  # which segments a depth-flip variant mirrors
SEGMENT_NAMES = ("upper", "lower", "end")

# Canonical limb postures for the LEFT side, as (upper, lower) segment directions in the frame of the joint the
# limb hangs from (BODY axes: Y up, Z front, X the body's left); the right side mirrors x.
ARM_POSTURES = {
    "down": ((0.3, -1.0, 0.05), (0.3, -1.0, 0.1)),
    "forward": ((0.1, -0.2, 1.0), (0.1, -0.2, 1.0)),
    "bent forward": ((0.3, -1.0, 0.2), (0.05, 0.1, 1.0)),
    "raised": ((0.2, 1.0, 0.1), (0.2, 1.0, 0.2)),
    "out": ((1.0, 0.0, 0.0), (1.0, 0.0, 0.1)),
    "reaching down": ((0.2, -0.7, 0.7), (0.1, -0.6, 0.8)),
}
LEG_POSTURES = {
    "straight": ((0.0, -1.0, 0.0), (0.0, -1.0, 0.0)),
    "seated": ((0.05, 0.0, 1.0), (0.0, -1.0, 0.2)),
    "kneeling": ((0.05, -1.0, 0.1), (0.0, 0.0, -1.0)),
    "squatting": ((0.3, 0.35, 0.9), (0.0, -0.95, -0.3)),
    "raised forward": ((0.0, -0.85, 0.5), (0.0, -1.0, 0.1)),
}


def aim(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The smallest rotation [3, 3] turning direction `source` into direction `target`."""
    a, b = source / source.norm(), target / target.norm()
    axis = torch.linalg.cross(a, b)
    angle = torch.atan2(axis.norm(), a @ b)
    return batch_rodrigues((axis / axis.norm().clamp_min(1e-9) * angle)[None])[0]


def set_chain(
    local: torch.Tensor,
    rotations: torch.Tensor,
    parents: torch.Tensor,
    rest: torch.Tensor,
    chain: tuple[int, ...],
    targets: list[torch.Tensor | None],
    fresh: bool = False,
) -> torch.Tensor:
    """Body joints' local rotations [21, 3, 3] with the chain's segments pointing along `targets` (camera frame;
    None keeps the segment's camera-frame direction). `rotations` [55, 3, 3] are the fit's global rotations,
    `rest` [55, 3] its rest joint positions.

    fresh=False turns each segment from where it is (keeping its twist, and the hand or foot keeps its camera-frame
    turn: a depth flip); fresh=True builds the segments from the rest pose (each joint swung from its rest
    direction, no twist, the hand or foot straight on): a canonical posture owes nothing to the fit's limb, whose
    twist and hand turn may be what is wrong."""
    local = local.clone()
    new_global: dict[int, torch.Tensor] = {}
    for k, (joint, child) in enumerate(pairwise(chain)):
        parent = int(parents[joint])
        parent_rot = new_global.get(parent, rotations[parent])
        offset = rest[child] - rest[joint]
        target = targets[k]
        if target is not None and fresh:
            current = parent_rot @ aim(offset, parent_rot.T @ target)
        elif target is not None:
            current = parent_rot @ local[joint - 1]
            current = aim(current @ offset, target) @ current
        elif fresh:
            current = parent_rot
        else:
            current = rotations[joint]
        new_global[joint] = current
        local[joint - 1] = parent_rot.T @ current
    end = chain[-1]
    if end <= 21 and int(parents[end]) == chain[-2] and not fresh:  # the next joint keeps its camera-frame turn
        local[end - 1] = new_global[chain[-2]].T @ rotations[end]
    return local


def limb_variants(
    local: torch.Tensor, rotations: torch.Tensor, positions: torch.Tensor, parents: torch.Tensor, rest: torch.Tensor
) -> list[tuple[str, torch.Tensor, tuple[int, ...], str]]:
    """(name, local rotations [21, 3, 3], the limb's three joints, the limb) for every depth flip and canonical
    posture of every limb."""
    out: list[tuple[str, torch.Tensor, tuple[int, ...], str]] = []
    for limb, chain in CHAINS.items():
        segments = [rotations[j] @ (rest[c] - rest[j]) for j, c in pairwise(chain)]
        for flipped in FLIPS:
            targets: list[torch.Tensor | None] = [None] * 3
            for k in flipped:
                ray = positions[chain[k]] / positions[chain[k]].norm()
                targets[k] = segments[k] - 2 * (segments[k] @ ray) * ray
            name = f"{limb} {'+'.join(SEGMENT_NAMES[k] for k in flipped)} flipped"
            out.append((name, set_chain(local, rotations, parents, rest, chain, targets), chain[:3], limb))
        frame = rotations[int(parents[chain[0]])]
        mirror = torch.tensor([1.0 if limb.startswith("left") else -1.0, 1.0, 1.0])
        for posture, (upper, lower) in (ARM_POSTURES if "arm" in limb else LEG_POSTURES).items():
            targets = [frame @ (torch.tensor(upper) * mirror), frame @ (torch.tensor(lower) * mirror), None]
            posed = set_chain(local, rotations, parents, rest, chain, targets, fresh=True)
            out.append((f"{limb} {posture}", posed, chain[:3], limb))
    return out
