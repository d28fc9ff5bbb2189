"""An independent reference for the rasteriser: Embree ray casting through the same pixel centres.

Used only by tests and benchmarks (needs the `dev` extra: trimesh + embreex). It shares no code with
`rasterize.py` beyond the camera model, so agreement between the two is evidence both are right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ivlm_core.render.cameras import PinholeCameras


@dataclass
class RayHits:
    """Per view [H, W]: the first face hit (-1 for none) and the hit's CV_CAMERA depth (inf for none)."""

    face: np.ndarray
    depth: np.ndarray


class EmbreeCaster:
    """Builds Embree's BVH once for a mesh, then casts one ray per pixel centre for any camera."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray) -> None:
        import trimesh
        from trimesh.ray.ray_pyembree import RayMeshIntersector

        self.mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces), process=False)
        self.intersector = RayMeshIntersector(self.mesh)

    @staticmethod
    def pixel_rays(cameras: PinholeCameras, view: int) -> tuple[np.ndarray, np.ndarray]:
        """World-space origins and directions [H*W, 3] of the rays through every pixel centre."""
        height, width = cameras.image_size
        cols, rows = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
        pixels = np.stack([cols.ravel(), rows.ravel(), np.ones(cols.size)], axis=-1)
        k = cameras.intrinsics[view].double().cpu().numpy()
        extrinsics = cameras.cv_camera_from_world[view].double().cpu().numpy()
        directions = (pixels @ np.linalg.inv(k).T) @ extrinsics[:3, :3]  # camera z = 1, rotated to world
        origin = cameras.camera_centers()[view].double().cpu().numpy()
        return np.broadcast_to(origin, directions.shape), directions

    def intersect(self, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Embree's first hits: (face ids, ray ids, hit points) for the rays that hit."""
        return self.intersector.intersects_id(origins, directions, multiple_hits=False, return_locations=True)

    def cast(self, cameras: PinholeCameras, view: int, znear: float = 0.0) -> RayHits:
        """First hits through every pixel centre of one view. With znear > 0 the rays start on the near
        plane (camera z = znear), so what is closer is not seen, as when the rasteriser clips there."""
        height, width = cameras.image_size
        origins, directions = self.pixel_rays(cameras, view)
        centre = origins[0]
        face, ray_ids, locations = self.intersect(origins + znear * directions, directions)
        face_img = np.full(height * width, -1, dtype=np.int64)
        depth_img = np.full(height * width, np.inf)
        face_img[ray_ids] = face
        forward = cameras.cv_camera_from_world[view, 2, :3].double().cpu().numpy()
        depth_img[ray_ids] = (locations - centre) @ forward
        return RayHits(face_img.reshape(height, width), depth_img.reshape(height, width))
