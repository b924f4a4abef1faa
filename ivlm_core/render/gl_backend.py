"""CPU rasterizer backend: OpenGL 3.3 through moderngl on a headless EGL context (Mesa llvmpipe here).

Faces are drawn un-indexed (3 vertices per face) so that `gl_VertexID % 3` names the corner, the
perspective-correct interpolation of the corner weights (b0, b1) is exactly the barycentric coordinate,
and `gl_VertexID / 3` is the face id, passed as a flat varying (reading `gl_PrimitiveID` instead costs
llvmpipe ~1 ms more per 27k-face draw). Camera depth is `1 / gl_FragCoord.w` (w = camera z), so no
depth varying is needed. Each output is its own single-channel 32-bit attachment (face id + 1, b0, b1,
b2, depth): llvmpipe clears 4-byte texels with a plain loop but 16-byte ones with one memcpy per texel,
and single planes read back at memory speed. The Phong-shaded image (the formula of
`ivlm_core.render.shading`, per fragment, the surface point rebuilt from the pixel centre and depth)
goes to an RGBA8 attachment in the same pass.

The mesh is uploaded in world coordinates and transformed in the vertex shader, so one upload serves
every view; the last uploaded mesh is kept per program and reused while its arrays are unchanged
(the body and object meshes are fixed). Framebuffers, programs and buffers live as long as the backend.
Closed meshes seen from outside are drawn with back faces culled (`ModernglBackend._cull`).

Where llvmpipe's time goes (anny, 27k faces, 512², 2 shared cores, per view): the draw call (vertex
shading, triangle setup and binning, on the calling thread) ~1.5 ms and the rasterization it waits for
~2.3 ms are per-triangle costs nearly independent of the image size; read-back ~0.7 ms. Culling halves
the triangles that reach setup and binning; the rest is what 27k triangles cost llvmpipe on 2 cores.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from ivlm_core.render.cameras import RenderCamera
from ivlm_core.render.raster import Raster, projection_params
from ivlm_core.render.shading import AMBIENT, DIFFUSE, SHININESS, SPECULAR

_VERTEX_COMMON = """
#version 330
uniform mat4 world_to_camera;  // world -> optical camera frame (x right, y down, z forward)
uniform vec4 proj;             // ax, ay, bx, by: pixel projection folded into clip space
uniform vec2 near_far;
in vec3 in_pos;                // world
flat out int v_face;
out vec2 v_bary;

vec3 project(vec3 world) {
    vec3 p = (world_to_camera * vec4(world, 1.0)).xyz;
    int k = gl_VertexID % 3;
    v_bary = vec2(k == 0 ? 1.0 : 0.0, k == 1 ? 1.0 : 0.0);
    v_face = gl_VertexID / 3 + 1;
    float n = near_far.x, f = near_far.y;
    float zc = (f + n) / (f - n) * p.z - 2.0 * f * n / (f - n);
    gl_Position = vec4(proj.x * p.x + proj.z * p.z, proj.y * p.y + proj.w * p.z, zc, p.z);
    return p;
}
"""

_RASTER_VERTEX_SHADER = (
    _VERTEX_COMMON
    + """
void main() {
    project(in_pos);
}
"""
)

_SHADE_VERTEX_SHADER = (
    _VERTEX_COMMON
    + """
in vec3 in_normal;      // world
in vec3 in_color;       // [0, 1]
out vec3 v_normal;      // camera frame
out vec3 v_color;
void main() {
    project(in_pos);
    v_normal = mat3(world_to_camera) * in_normal;
    v_color = in_color;
}
"""
)

_FRAGMENT_COMMON = """
#version 330
flat in int v_face;
in vec2 v_bary;
layout(location = 0) out int out_face;
layout(location = 1) out float out_b0;
layout(location = 2) out float out_b1;
layout(location = 3) out float out_b2;
layout(location = 4) out float out_depth;

void write_raster() {
    // The pixel centre is inside the face, but llvmpipe's snapped float interpolation can leave weights
    // ~1e-2 below 0 and ~1e-3 off a unit sum: clamp and renormalise.
    vec3 b = max(vec3(v_bary, 1.0 - v_bary.x - v_bary.y), vec3(0.0));
    b /= b.x + b.y + b.z;
    out_face = v_face;
    out_b0 = b.x;
    out_b1 = b.y;
    out_b2 = b.z;
    out_depth = 1.0 / gl_FragCoord.w;
}
"""

_RASTER_FRAGMENT_SHADER = (
    _FRAGMENT_COMMON
    + """
void main() {
    write_raster();
}
"""
)

_SHADE_FRAGMENT_SHADER = (
    _FRAGMENT_COMMON
    + """
uniform vec4 pinhole;   // fx, fy, cx, cy: rebuilds the camera-frame point seen through the pixel centre
uniform vec3 light;     // point light, camera frame (the eye is the origin)
uniform vec4 phong;     // ambient, diffuse, specular, shininess
in vec3 v_normal;
in vec3 v_color;
layout(location = 5) out vec4 out_color;
void main() {
    write_raster();
    float z = 1.0 / gl_FragCoord.w;
    vec3 pos = vec3((gl_FragCoord.xy - pinhole.zw) / pinhole.xy * z, z);
    vec3 n = v_normal / max(length(v_normal), 1e-6);
    vec3 to_light = light - pos;
    to_light /= max(length(to_light), 1e-6);
    vec3 to_eye = -pos / max(length(pos), 1e-6);
    float c = dot(n, to_light);
    float alpha = c > 0.0 ? max(dot(to_eye, -to_light + 2.0 * c * n), 0.0) : 0.0;
    vec3 rgb = (phong.x + phong.y * max(c, 0.0)) * v_color + phong.z * pow(alpha, phong.w);
    // Truncate like uint8(x * 255), stored as 255 minus the value: the attachment is cleared to 0 with the
    // others in one glClear (a separate white clear costs llvmpipe a framebuffer switch and scene flush).
    out_color = vec4(1.0 - floor(clamp(rgb, 0.0, 1.0) * 255.0) / 255.0, 0.0);
}
"""
)


class _MeshBuffer:
    """One mesh uploaded un-indexed for one program, with the source arrays it was made from.

    `orientation` is +1 (-1) when the mesh is closed, consistently wound and encloses a positive (negative)
    volume, else 0; `bounds` is its (2, 3) world bounding box. See `ModernglBackend._cull`.
    """

    def __init__(
        self,
        ctx,
        prog,
        sources: tuple[np.ndarray, ...],
        faces: np.ndarray,
        names: tuple[str, ...],
        closed: bool,
    ):
        self.sources = tuple(np.array(a, copy=True) for a in (*sources, faces))
        corners = faces.reshape(-1)
        per_corner = np.concatenate(
            [np.take(np.asarray(a, dtype=np.float32), corners, axis=0) for a in sources], axis=1
        )  # (3F, 3 * len(sources))
        self.vbo = ctx.buffer(per_corner)
        self.vao = ctx.vertex_array(prog, [(self.vbo, " ".join(["3f"] * len(names)), *names)])
        v = np.asarray(sources[0], dtype=np.float64)
        self.bounds = np.stack([v.min(0), v.max(0)])
        self.orientation = 0
        if closed:
            a, b, c = (np.take(v, faces[:, k], axis=0) for k in range(3))
            self.orientation = int(np.sign(np.einsum("ij,ij->", a, np.cross(b, c))))

    def holds(self, sources: tuple[np.ndarray, ...], faces: np.ndarray) -> bool:
        """True when this buffer was made from arrays equal to these."""
        return all(
            a.shape == b.shape and np.array_equal(a, b)
            for a, b in zip(self.sources, (*sources, faces), strict=True)
        )

    def release(self) -> None:
        self.vao.release()
        self.vbo.release()


class ModernglBackend:
    """Owns one EGL context, the programs and the framebuffer of a fixed size; reused for every call."""

    name = "moderngl"

    def __init__(self, size: tuple[int, int]) -> None:
        import moderngl

        self.size = size
        H, W = size
        self._ctx = moderngl.create_context(standalone=True, backend="egl")
        self.renderer = self._ctx.info.get("GL_RENDERER", "unknown")
        ctx = self._ctx
        self._raster_prog = ctx.program(
            vertex_shader=_RASTER_VERTEX_SHADER, fragment_shader=_RASTER_FRAGMENT_SHADER
        )
        self._shade_prog = ctx.program(
            vertex_shader=_SHADE_VERTEX_SHADER, fragment_shader=_SHADE_FRAGMENT_SHADER
        )
        self._shade_prog["phong"].value = (AMBIENT, DIFFUSE, SPECULAR, SHININESS)
        self._face = ctx.renderbuffer((W, H), components=1, dtype="i4")
        self._planes = [ctx.renderbuffer((W, H), components=1, dtype="f4") for _ in range(4)]  # b0 b1 b2 z
        self._rgba = ctx.renderbuffer((W, H), components=4, dtype="f1")
        self._zbuffer = ctx.depth_renderbuffer((W, H))
        self._raster_fbo = ctx.framebuffer([self._face, *self._planes], self._zbuffer)
        self._shade_fbo = ctx.framebuffer([self._face, *self._planes, self._rgba], self._zbuffer)
        self._lock = threading.Lock()
        self._meshes: dict[str, _MeshBuffer] = {}  # program name -> last mesh uploaded for it
        self._topology: tuple[np.ndarray, bool] | None = None  # last faces checked, closed and consistent?

    def rasterize_views(
        self, vertices: np.ndarray, faces: np.ndarray, cameras: Sequence[RenderCamera]
    ) -> list[Raster]:
        """One Raster per camera; vertices (V, 3) world, faces (F, 3) int32, both validated."""
        # Several rasterizers (several EGL contexts) may live in one process: make ours current. The lock
        # serialises callers on different threads (e.g. a multi-threaded ROS executor).
        with self._lock, self._ctx:
            mesh = self._mesh("raster", self._raster_prog, (vertices,), faces, ("in_pos",))
            out = self._outputs(len(cameras), shade=False)
            for k, camera in enumerate(cameras):
                self._draw(self._raster_prog, self._raster_fbo, mesh, vertices, camera)
                self._read(k, out)
            return _rasters(out)

    def shade_views(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        cameras: Sequence[RenderCamera],
        normals: np.ndarray,
        colors: np.ndarray,
        lights: np.ndarray,
    ) -> tuple[list[Raster], np.ndarray]:
        """Rasters and Phong-shaded (N, H, W, 3) uint8 images on white; normals, colors (V, 3) world and
        [0, 1]; lights (N, 3) camera-frame point light per camera."""
        with self._lock, self._ctx:
            mesh = self._mesh(
                "shade",
                self._shade_prog,
                (vertices, normals, colors),
                faces,
                ("in_pos", "in_normal", "in_color"),
            )
            out = self._outputs(len(cameras), shade=True)
            for k, camera in enumerate(cameras):
                self._shade_prog["light"].value = tuple(float(x) for x in lights[k])
                K = camera.intrinsics.K
                self._shade_prog["pinhole"].value = (K[0, 0], K[1, 1], K[0, 2], K[1, 2])
                self._draw(self._shade_prog, self._shade_fbo, mesh, vertices, camera)
                self._read(k, out)
                self._shade_fbo.read_into(out["rgb"][k], components=3, dtype="f1", attachment=5)
            return _rasters(out), np.subtract(255, out["rgb"], out=out["rgb"])

    def _mesh(
        self, key: str, prog, sources: tuple[np.ndarray, ...], faces: np.ndarray, names: tuple[str, ...]
    ) -> _MeshBuffer:
        """This mesh uploaded for `prog`: the buffer already there when it holds the same arrays."""
        held = self._meshes.get(key)
        if held is not None and held.holds(sources, faces):
            return held
        if held is not None:
            held.release()
        self._meshes[key] = _MeshBuffer(self._ctx, prog, sources, faces, names, self._closed(faces))
        return self._meshes[key]

    def _closed(self, faces: np.ndarray) -> bool:
        """Whether the faces form closed, consistently wound surfaces (checked once per faces array)."""
        import trimesh

        if self._topology is None or not np.array_equal(self._topology[0], faces):
            mesh = trimesh.Trimesh(vertices=np.zeros((int(faces.max()) + 1, 3)), faces=faces, process=False)
            self._topology = (faces.copy(), bool(mesh.is_watertight and mesh.is_winding_consistent))
        return self._topology[1]

    @staticmethod
    def _cull(mesh: _MeshBuffer, camera: RenderCamera) -> str | None:
        """The winding of the faces to draw ("cw"/"ccw"), or None to draw all faces.

        Seen from a camera outside a closed, consistently wound surface, every first hit along a pixel's
        ray enters the enclosed volume, i.e. is a front face: culling back faces changes no output (but
        for a pixel or two on exact edge ties) and halves llvmpipe's per-triangle setup and binning, which
        dominate its time. Outward faces that are counter-clockwise in the world are clockwise in our
        y-down image; a mirroring camera (det R < 0) or one inside the mesh's bounds draws all faces.
        """
        if mesh.orientation == 0:
            return None
        centre = camera.camera_centre()
        inside = np.all((centre >= mesh.bounds[0]) & (centre <= mesh.bounds[1]))
        if np.linalg.det(camera.world_to_camera[:3, :3]) <= 0 or inside:
            return None
        return "cw" if mesh.orientation > 0 else "ccw"

    def _outputs(self, n: int, shade: bool) -> dict[str, np.ndarray]:
        H, W = self.size
        out = {
            "face": np.empty((n, H, W), dtype=np.int32),
            "planes": np.empty((n, 4, H, W), dtype=np.float32),  # b0, b1, b2, depth
        }
        if shade:
            out["rgb"] = np.empty((n, H, W, 3), dtype=np.uint8)
        return out

    def _draw(self, prog, fbo, mesh: _MeshBuffer, vertices: np.ndarray, camera: RenderCamera) -> None:
        import moderngl

        H, W = self.size
        M = camera.world_to_camera
        ab, near, far = projection_params(camera.intrinsics, vertices @ M[2, :3] + M[2, 3])
        prog["world_to_camera"].write(M.T.astype(np.float32).tobytes())  # GLSL matrices are column-major
        prog["proj"].value = tuple(float(x) for x in ab)
        prog["near_far"].value = (near, far)
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        fbo.use()
        self._ctx.viewport = (0, 0, W, H)
        self._ctx.enable(moderngl.DEPTH_TEST)
        front = self._cull(mesh, camera)
        if front is None:
            self._ctx.disable(moderngl.CULL_FACE)
        else:
            self._ctx.front_face = front
            self._ctx.enable(moderngl.CULL_FACE)
        mesh.vao.render(moderngl.TRIANGLES)

    def _read(self, k: int, out: dict[str, np.ndarray]) -> None:
        fbo = self._raster_fbo
        fbo.read_into(out["face"][k], components=1, dtype="i4", attachment=0)
        for c in range(4):
            fbo.read_into(out["planes"][k, c], components=1, dtype="f4", attachment=1 + c)

    def close(self) -> None:
        """Release the GL objects and the context."""
        with self._lock, self._ctx:
            for mesh in self._meshes.values():
                mesh.release()
            for obj in (
                self._raster_fbo,
                self._shade_fbo,
                self._face,
                *self._planes,
                self._rgba,
                self._zbuffer,
            ):
                obj.release()
            self._raster_prog.release()
            self._shade_prog.release()
        self._meshes = {}
        self._ctx.release()


def _rasters(out: dict[str, np.ndarray]) -> list[Raster]:
    """Rasters viewing the read-back planes: barycentrics (H, W, 3) are a view of the (3, H, W) planes."""
    face, planes = out["face"], out["planes"]
    face -= 1
    return [
        Raster(triangle_id=face[k], barycentrics=np.moveaxis(planes[k, :3], 0, -1), depth=planes[k, 3])
        for k in range(face.shape[0])
    ]
