"""Pinhole cameras, and PyTorch3D's `look_at_view_transform` + `FoVPerspectiveCameras` reproduced.

InteractVLM's released renders and pixel maps were made with PyTorch3D, so its canonical views must be
reproduced exactly. PyTorch3D is not installable here, so its conventions are re-derived:

* `look_at_view_transform(dist, elev, azim)` puts the camera at
  `dist * (cos(elev) sin(azim), sin(elev), cos(elev) cos(azim))`, looking at the origin with +Y up, and
  returns (R, T) for PyTorch3D's row-vector convention `x_view = x_world @ R + T`.
* `FoVPerspectiveCameras(fov=60, aspect=1)` on a square S x S image is a pinhole with focal length
  `S / (2 tan(fov / 2))` and the principal point at the image centre. PyTorch3D's pixel (row i, col j)
  is centred at NDC `(1 - (2j + 1) / S, 1 - (2i + 1) / S)` with NDC +X left and +Y up.

Internally every camera is one `PinholeCameras` batch: world->CV_CAMERA extrinsics and OpenCV intrinsics
(see `ivlm_core.frames`), so renders of canonical views and of photos share one code path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ivlm_core.frames import CV_CAMERA_FROM_P3D_VIEW, as_torch, make_transform

_LOOK_AT_EPS = 1e-5  # PyTorch3D's normalize eps in look_at_rotation


def look_at_rotation(camera_position: torch.Tensor, up: tuple[float, float, float] = (0.0, 1.0, 0.0)) -> torch.Tensor:
    """PyTorch3D's `look_at_rotation` towards the origin: R [B, 3, 3] whose columns are the view axes."""
    at = torch.zeros_like(camera_position)
    up_t = torch.tensor(up, dtype=camera_position.dtype, device=camera_position.device).expand_as(camera_position)
    z_axis = torch.nn.functional.normalize(at - camera_position, eps=_LOOK_AT_EPS, dim=-1)
    x_axis = torch.nn.functional.normalize(torch.cross(up_t, z_axis, dim=-1), eps=_LOOK_AT_EPS, dim=-1)
    y_axis = torch.nn.functional.normalize(torch.cross(z_axis, x_axis, dim=-1), eps=_LOOK_AT_EPS, dim=-1)
    # Looking straight up or down makes up x z vanish. PyTorch3D's own fallback then returns a degenerate
    # matrix, so we deviate: take -Z as the reference instead (the limit of azim 0 when looking down).
    # The threshold is normalize's eps: below it normalize returns a vector shorter than 1 (no rotation).
    degenerate = torch.linalg.vector_norm(torch.cross(up_t, z_axis, dim=-1), dim=-1, keepdim=True) < _LOOK_AT_EPS
    if degenerate.any():
        ref = torch.tensor((0.0, 0.0, -1.0), dtype=z_axis.dtype, device=z_axis.device).expand_as(z_axis)
        x_alt = torch.nn.functional.normalize(torch.cross(ref, z_axis, dim=-1), dim=-1)
        x_axis = torch.where(degenerate, x_alt, x_axis)
        y_axis = torch.where(degenerate, torch.cross(z_axis, x_alt, dim=-1), y_axis)
    rows = torch.stack([x_axis, y_axis, z_axis], dim=-2)
    return rows.transpose(-1, -2)


def look_at_view_transform(
    dist: torch.Tensor | float | Sequence[float],
    elev: torch.Tensor | float | Sequence[float],
    azim: torch.Tensor | float | Sequence[float],
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch3D's `look_at_view_transform(dist, elev, azim, degrees=True)`: (R [B,3,3], T [B,3]); each of
    dist, elev, azim is one value or B of them (broadcast together)."""
    dist_t, elev_t, azim_t = torch.broadcast_tensors(
        *(torch.as_tensor(v, dtype=dtype).reshape(-1) for v in (dist, elev, azim))
    )
    elev_r, azim_r = torch.deg2rad(elev_t), torch.deg2rad(azim_t)
    position = torch.stack(
        [
            dist_t * torch.cos(elev_r) * torch.sin(azim_r),
            dist_t * torch.sin(elev_r),
            dist_t * torch.cos(elev_r) * torch.cos(azim_r),
        ],
        dim=-1,
    )
    rotation = look_at_rotation(position)
    translation = -(rotation.transpose(-1, -2) @ position[..., None])[..., 0]
    return rotation, translation


def cv_look_at(
    eye: torch.Tensor | tuple[float, float, float],
    target: torch.Tensor | tuple[float, float, float],
    up: tuple[float, float, float] = (0.0, 1.0, 0.0),
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """World -> CV_CAMERA transform [4, 4] of a camera at `eye` looking at `target`, `up` appearing upwards."""
    eye_t = torch.as_tensor(eye, dtype=dtype)
    forward = torch.nn.functional.normalize(torch.as_tensor(target, dtype=dtype) - eye_t, dim=0)
    right = torch.nn.functional.normalize(torch.cross(forward, torch.as_tensor(up, dtype=dtype), dim=0), dim=0)
    down = torch.cross(forward, right, dim=0)
    rotation = torch.stack([right, down, forward])
    return make_transform(rotation, -(rotation @ eye_t))


def fov_focal_length(image_size: int, fov_degrees: float = 60.0) -> float:
    """Focal length in pixels of PyTorch3D's FoVPerspectiveCameras on a square image."""
    return image_size / (2.0 * math.tan(math.radians(fov_degrees) / 2.0))


def _safe_depth(z: torch.Tensor) -> torch.Tensor:
    """Depths to divide by: |z| <= 1e-12 (a point on the camera plane) replaced by 1e-12. torch.where runs several
    times slower than arithmetic on the CPU, and most renders have no such point, so it runs only when one is."""
    small = z.abs() <= 1e-12
    return torch.where(small, torch.full_like(z, 1e-12), z) if bool(small.any()) else z


@dataclass(frozen=True)
class PinholeCameras:
    """A batch of B pinhole cameras sharing one image size.

    cv_camera_from_world: [B, 4, 4], world -> CV_CAMERA (+X right, +Y down, +Z forward), metres.
    intrinsics: [B, 3, 3] OpenCV K; pixel (row i, col j) is centred at (u=j, v=i).
    image_size: (height, width) in pixels.
    znear: nothing closer than this (along +Z) is drawn; faces crossing it are clipped there. PyTorch3D's
        FoV znear=1 does not clip rasterised faces (its rasteriser only drops points behind the camera), so
        the default is tiny: in effect, only what is at or behind the camera plane is cut away.
    """

    cv_camera_from_world: torch.Tensor
    intrinsics: torch.Tensor
    image_size: tuple[int, int]
    znear: float = 1e-3

    def __post_init__(self) -> None:
        if self.cv_camera_from_world.shape[-2:] != (4, 4) or self.intrinsics.shape[-2:] != (3, 3):
            raise ValueError("cameras need [B, 4, 4] extrinsics and [B, 3, 3] intrinsics")
        if self.cv_camera_from_world.shape[0] != self.intrinsics.shape[0]:
            raise ValueError("extrinsics and intrinsics have different batch sizes")

    @property
    def batch_size(self) -> int:
        return self.cv_camera_from_world.shape[0]

    @property
    def device(self) -> torch.device:
        return self.cv_camera_from_world.device

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> PinholeCameras:
        return PinholeCameras(
            self.cv_camera_from_world.to(device=device, dtype=dtype),
            self.intrinsics.to(device=device, dtype=dtype),
            self.image_size,
            self.znear,
        )

    def __getitem__(self, index: int | slice) -> PinholeCameras:
        """A sub-batch of these cameras (an int keeps a batch of one)."""
        sl = slice(index, index + 1) if isinstance(index, int) else index
        return PinholeCameras(self.cv_camera_from_world[sl], self.intrinsics[sl], self.image_size, self.znear)

    def world_to_camera(self, points_world: torch.Tensor) -> torch.Tensor:
        """Points [N, 3] or [B, N, 3] in world -> [B, N, 3] in CV_CAMERA.

        Shared points [N, 3] come back as a view of [B, 3, N] rows (x, y, z), so a reader of one coordinate
        reads contiguous memory; R [3, 3] @ points [3, N] is one long product per view (on the CPU, [N, 3] @
        [3, 3] runs several times slower on large meshes)."""
        transform = self.cv_camera_from_world.to(points_world.dtype)
        if points_world.dim() == 2:
            rows = torch.baddbmm(
                transform[:, :3, 3:4], transform[:, :3, :3], points_world.T.expand(transform.shape[0], 3, -1)
            )
            return rows.transpose(1, 2)
        return points_world @ transform[:, :3, :3].transpose(-1, -2) + transform[:, None, :3, 3]

    def project(self, points_camera: torch.Tensor) -> torch.Tensor:
        """CV_CAMERA points [B, N, 3] -> (u, v, z) [B, N, 3]: pixel coordinates and depth in metres.

        The result is a view of [3, B, N] rows (u, v, z), so a reader of one coordinate reads contiguous memory."""
        k = self.intrinsics.to(points_camera.dtype)
        z = points_camera[..., 2]
        safe_z = _safe_depth(z)
        x, y = points_camera[..., 0] / safe_z, points_camera[..., 1] / safe_z
        u = k[:, None, 0, 0] * x + k[:, None, 0, 1] * y + k[:, None, 0, 2]
        v = k[:, None, 1, 1] * y + k[:, None, 1, 2]
        return torch.stack([u, v, z]).permute(1, 2, 0)

    def world_to_screen(self, points_world: torch.Tensor) -> torch.Tensor:
        """Shared world points [N, 3] -> (u, v, z) [B, N, 3], as `project(world_to_camera(points))` up to float
        rounding, in one product per coordinate with K [R | t] (3 x 4 per view) and two divisions.

        The result is a view of [3, B, N] rows (u, v, z), filled in place: the rasteriser reads whole rows, and
        the separate transform, projection and stack cost three times as many passes over B * N values. Filled
        with out=, so without gradients: for points that need them, project(world_to_camera(.))."""
        k = self.intrinsics.to(points_world.dtype)
        transform = k @ self.cv_camera_from_world[:, :3, :].to(points_world.dtype)  # [B, 3, 4]
        rows = points_world.T  # [3, N]
        out = torch.empty(3, transform.shape[0], rows.shape[1], dtype=rows.dtype, device=rows.device)
        for c in range(3):  # row c of K [R | t] for every view: [B, 3] @ [3, N] + [B, 1]
            torch.addmm(transform[:, c, 3:4], transform[:, c, :3], rows, out=out[c])
        safe_z = _safe_depth(out[2])
        out[0].div_(safe_z)
        out[1].div_(safe_z)
        return out.permute(1, 2, 0)

    def camera_centers(self) -> torch.Tensor:
        """Camera positions in world coordinates, [B, 3]."""
        rotation = self.cv_camera_from_world[:, :3, :3]
        return -(rotation.transpose(-1, -2) @ self.cv_camera_from_world[:, :3, 3:4])[..., 0]

    @staticmethod
    def from_pytorch3d(
        rotation: torch.Tensor,
        translation: torch.Tensor,
        image_size: int,
        fov_degrees: float = 60.0,
    ) -> PinholeCameras:
        """Wraps PyTorch3D (R, T) + FoVPerspectiveCameras(fov, aspect=1) for a square image."""
        p3d_view_from_world = make_transform(rotation.transpose(-1, -2), translation)
        cv_from_world = as_torch(CV_CAMERA_FROM_P3D_VIEW, p3d_view_from_world) @ p3d_view_from_world
        focal = fov_focal_length(image_size, fov_degrees)
        # PyTorch3D's NDC centre lies between pixels S/2 - 1 and S/2, i.e. at (S - 1) / 2 in OpenCV pixels.
        centre = (image_size - 1) / 2.0
        k = torch.tensor([[focal, 0.0, centre], [0.0, focal, centre], [0.0, 0.0, 1.0]], dtype=rotation.dtype)
        return PinholeCameras(cv_from_world, k.expand(rotation.shape[0], 3, 3).clone(), (image_size, image_size))
