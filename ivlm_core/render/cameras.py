"""The original InteractVLM's virtual camera rigs, as plain data and matrices.

A view is the tuple the original feeds to PyTorch3D: `(distance, elevation_deg, azimuth_deg, x_trans,
y_trans)`. PyTorch3D's `look_at_view_transform` places the camera on a sphere around the origin with +Y
up and returns (R, T) for row vectors, `X_view = X_world @ R + T`, in its camera frame (+X left, +Y up,
+Z into the screen); the original then adds `x_trans`/`y_trans` to T[0]/T[1] and renders with a 60°
field-of-view perspective camera. Here the same cameras are also given as a 4x4 world -> camera matrix in
the project's optical frame (x right, y down, z forward) plus pinhole intrinsics, which is what the
rasterizer consumes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ivlm_core.types import CameraIntrinsics

FOV_DEG = 60.0  # PyTorch3D FoVPerspectiveCameras default, used by every InteractVLM render

# PyTorch3D camera frame (+X left, +Y up, +Z forward) -> optical frame (+X right, +Y down, +Z forward).
_P3D_TO_OPTICAL = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class View:
    """One virtual camera of a rig, in the original's parameterisation (angles in degrees)."""

    name: str
    distance: float
    elevation_deg: float
    azimuth_deg: float
    x_trans: float = 0.0
    y_trans: float = 0.0
    light_location: tuple[float, float, float] = (0.0, 0.0, 3.0)  # world point light of the Phong render

    @property
    def params(self) -> tuple[float, float, float, float, float]:
        """The original's `(distance, elevation, azimuth, x_trans, y_trans)` tuple."""
        return (self.distance, self.elevation_deg, self.azimuth_deg, self.x_trans, self.y_trans)

    def at_distance(self, distance: float) -> View:
        """The same view direction and offsets with another camera distance."""
        return replace(self, distance=distance)

    def camera_position(self) -> np.ndarray:
        """(3,) camera centre in world coordinates, before the x/y offsets (PyTorch3D spherical angles)."""
        elev, azim = np.radians(self.elevation_deg), np.radians(self.azimuth_deg)
        return self.distance * np.array(
            [np.cos(elev) * np.sin(azim), np.sin(elev), np.cos(elev) * np.cos(azim)]
        )

    def pytorch3d_rt(self) -> tuple[np.ndarray, np.ndarray]:
        """PyTorch3D's (R (3, 3), T (3,)) for this view, offsets applied: `X_view = X_world @ R + T`."""
        eye = self.camera_position()
        z_axis = _normalize(-eye)
        up = np.array([0.0, 1.0, 0.0])
        x_axis = _normalize(np.cross(up, z_axis))
        y_axis = _normalize(np.cross(z_axis, x_axis))
        if np.allclose(x_axis, 0.0, atol=5e-3):
            # Looking straight up or down: up is parallel to the view axis; PyTorch3D's fallback.
            x_axis = _normalize(np.cross(y_axis, z_axis))
        R = np.stack([x_axis, y_axis, z_axis], axis=1)  # columns are the camera axes in world coordinates
        T = -R.T @ eye
        T = T + np.array([self.x_trans, self.y_trans, 0.0])
        return R, T

    def world_to_camera(self) -> np.ndarray:
        """(4, 4) float64 world -> optical camera frame (x right, y down, z forward)."""
        R, T = self.pytorch3d_rt()
        M = np.eye(4)
        M[:3, :3] = _P3D_TO_OPTICAL @ R.T
        M[:3, 3] = _P3D_TO_OPTICAL @ T
        return M

    def intrinsics(self, width: int, height: int | None = None) -> CameraIntrinsics:
        """Pinhole intrinsics equal to PyTorch3D's 60° FoVPerspectiveCameras for a square image."""
        height = width if height is None else height
        if width != height:
            raise ValueError(
                f"view '{self.name}': the original's FoV camera is for square images, got {width}x{height}"
            )
        return CameraIntrinsics.from_fov(width, height, FOV_DEG)

    def camera(self, size: int) -> RenderCamera:
        """This view as a RenderCamera for a `size` x `size` image."""
        return RenderCamera(
            world_to_camera=self.world_to_camera(), intrinsics=self.intrinsics(size), name=self.name
        )


@dataclass(frozen=True)
class RenderCamera:
    """A pinhole camera the rasterizer draws from: extrinsics in the optical frame plus intrinsics."""

    world_to_camera: np.ndarray  # (4, 4) float64, world -> optical frame (x right, y down, z forward)
    intrinsics: CameraIntrinsics
    name: str = ""

    def __post_init__(self) -> None:
        M = np.asarray(self.world_to_camera, dtype=np.float64)
        if M.shape != (4, 4) or not np.all(np.isfinite(M)):
            raise ValueError(f"camera '{self.name}': world_to_camera must be a finite 4x4 matrix, got {M!r}")
        object.__setattr__(self, "world_to_camera", M)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return (self.intrinsics.height, self.intrinsics.width)

    def camera_centre(self) -> np.ndarray:
        """(3,) camera centre in world coordinates."""
        R, t = self.world_to_camera[:3, :3], self.world_to_camera[:3, 3]
        return -R.T @ t


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-5)


# Human rig `4MV-Z_Vitru` (`preprocess_data/constants.py::HUMAN_VIEW_DICT` of the official repository),
# in the order of the localizer's 4 channels. Light locations as the original's data generation assigns
# them per view name (its shipped renders are assumed to match).
HUMAN_VIEWS: tuple[View, ...] = (
    View("topfront", 2.0, 45.0, 315.0, 0.0, 0.0, (0.0, 0.0, 3.0)),
    View("bottomfront", 2.0, 315.0, 315.0, 0.0, 0.3, (0.0, 0.0, -3.0)),
    View("topback", 2.0, 45.0, 135.0, 0.0, 0.0, (0.0, 0.0, -3.0)),
    View("bottomback", 2.0, 315.0, 135.0, 0.0, 0.3, (0.0, 0.0, 3.0)),
)

# Object rig: the demo renders at distance 1.5 (`generate_sam_inp_objs`); the camera encoding fed to the
# model uses the `4MV-Z_HM` cam_params at distance 2 (`preprocess_data/constants.py::OBJS_VIEW_DICT`:
# `mesh_cam_params` 1.5, `cam_params` 2).
OBJECT_VIEWS: tuple[View, ...] = (
    View("frontleft", 1.5, 45.0, 315.0, light_location=(0.0, 0.0, 3.0)),
    View("frontright", 1.5, 45.0, 45.0, light_location=(0.0, 0.0, 3.0)),
    View("backleft", 1.5, 330.0, 135.0, light_location=(0.0, 0.0, -3.0)),
    View("backright", 1.5, 330.0, 225.0, light_location=(0.0, 0.0, -3.0)),
)
OBJECT_ENCODING_VIEWS: tuple[View, ...] = tuple(v.at_distance(2.0) for v in OBJECT_VIEWS)


def normalize_cam_params(view: View) -> np.ndarray:
    """(5,) float32 camera conditioning input: `[dist/10, elev/360, azim/360, (x+1)/2, (y+1)/2]`."""
    d, e, a, x, y = view.params
    return np.array([d / 10.0, e / 360.0, a / 360.0, (x + 1.0) / 2.0, (y + 1.0) / 2.0], dtype=np.float32)


def rig_cam_params(views: tuple[View, ...]) -> np.ndarray:
    """(N, 5) float32 normalised camera parameters of a rig, in view order."""
    return np.stack([normalize_cam_params(v) for v in views])
