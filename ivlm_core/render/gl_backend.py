"""CPU rasterizer backend: OpenGL 3.3 through moderngl on a headless EGL context (Mesa llvmpipe here).

Faces are drawn un-indexed (3 vertices per face) so that `gl_VertexID % 3` names the corner and the
perspective-correct interpolation of a one-hot corner vector is exactly the barycentric coordinate.
An RGBA32F attachment holds (b0, b1, b2, camera z) per pixel and an R32I attachment the face id + 1
(integer attachments clear to 0), so the readback needs no per-pixel post-processing. `shade` draws
the same raster and, in the same pass, the Phong-shaded colour image into an RGBA8 attachment (the
formula of `ivlm_core.render.shading`, evaluated per fragment).
"""

from __future__ import annotations

import threading

import numpy as np

from ivlm_core.render.rasterize import CameraSpaceMesh, Raster
from ivlm_core.render.shading import AMBIENT, DIFFUSE, SHININESS, SPECULAR

_VERTEX_SHADER = """
#version 330
uniform vec4 proj;      // ax, ay, bx, by: pixel projection folded into clip space
uniform vec2 near_far;
in vec3 in_pos;         // camera frame, x right, y down, z forward
out vec3 v_bary;
out float v_depth;
void main() {
    int k = gl_VertexID % 3;
    v_bary = vec3(k == 0 ? 1.0 : 0.0, k == 1 ? 1.0 : 0.0, k == 2 ? 1.0 : 0.0);
    v_depth = in_pos.z;
    float n = near_far.x, f = near_far.y;
    float zc = (f + n) / (f - n) * in_pos.z - 2.0 * f * n / (f - n);
    gl_Position = vec4(proj.x * in_pos.x + proj.z * in_pos.z, proj.y * in_pos.y + proj.w * in_pos.z,
                       zc, in_pos.z);
}
"""

_FRAGMENT_SHADER = """
#version 330
in vec3 v_bary;
in float v_depth;
layout(location = 0) out vec4 out_bary_depth;
layout(location = 1) out int out_face;
void main() {
    // The pixel centre is inside the face, but llvmpipe's snapped float interpolation can leave weights
    // ~1e-2 below 0 and ~1e-3 off a unit sum: clamp and renormalise.
    vec3 b = max(v_bary, vec3(0.0));
    out_bary_depth = vec4(b / (b.x + b.y + b.z), v_depth);
    out_face = gl_PrimitiveID + 1;
}
"""

_SHADE_VERTEX_SHADER = """
#version 330
uniform vec4 proj;
uniform vec2 near_far;
in vec3 in_pos;         // camera frame
in vec3 in_normal;      // camera frame
in vec3 in_color;       // [0, 1]
out vec3 v_bary;
out float v_depth;
out vec3 v_pos;
out vec3 v_normal;
out vec3 v_color;
void main() {
    int k = gl_VertexID % 3;
    v_bary = vec3(k == 0 ? 1.0 : 0.0, k == 1 ? 1.0 : 0.0, k == 2 ? 1.0 : 0.0);
    v_depth = in_pos.z;
    v_pos = in_pos;
    v_normal = in_normal;
    v_color = in_color;
    float n = near_far.x, f = near_far.y;
    float zc = (f + n) / (f - n) * in_pos.z - 2.0 * f * n / (f - n);
    gl_Position = vec4(proj.x * in_pos.x + proj.z * in_pos.z, proj.y * in_pos.y + proj.w * in_pos.z,
                       zc, in_pos.z);
}
"""

_SHADE_FRAGMENT_SHADER = """
#version 330
uniform vec3 light;     // point light, camera frame (the eye is the origin)
uniform vec4 phong;     // ambient, diffuse, specular, shininess
in vec3 v_bary;
in float v_depth;
in vec3 v_pos;
in vec3 v_normal;
in vec3 v_color;
layout(location = 0) out vec4 out_bary_depth;
layout(location = 1) out int out_face;
layout(location = 2) out vec4 out_color;
void main() {
    vec3 b = max(v_bary, vec3(0.0));
    out_bary_depth = vec4(b / (b.x + b.y + b.z), v_depth);
    out_face = gl_PrimitiveID + 1;
    vec3 n = v_normal / max(length(v_normal), 1e-6);
    vec3 to_light = light - v_pos;
    to_light /= max(length(to_light), 1e-6);
    vec3 to_eye = -v_pos / max(length(v_pos), 1e-6);
    float c = dot(n, to_light);
    float alpha = c > 0.0 ? max(dot(to_eye, -to_light + 2.0 * c * n), 0.0) : 0.0;
    vec3 rgb = (phong.x + phong.y * max(c, 0.0)) * v_color + phong.z * pow(alpha, phong.w);
    out_color = vec4(floor(clamp(rgb, 0.0, 1.0) * 255.0) / 255.0, 1.0);  // truncate like uint8(x * 255)
}
"""


class ModernglBackend:
    """Owns one EGL context, program and framebuffer of a fixed size; reused for every call."""

    name = "moderngl"

    def __init__(self, size: tuple[int, int]) -> None:
        import moderngl

        self.size = size
        H, W = size
        self._ctx = moderngl.create_context(standalone=True, backend="egl")
        self.renderer = self._ctx.info.get("GL_RENDERER", "unknown")
        self._prog = self._ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        self._shade_prog = self._ctx.program(
            vertex_shader=_SHADE_VERTEX_SHADER, fragment_shader=_SHADE_FRAGMENT_SHADER
        )
        self._shade_prog["phong"].value = (AMBIENT, DIFFUSE, SPECULAR, SHININESS)
        self._color = self._ctx.renderbuffer((W, H), components=4, dtype="f4")
        self._face = self._ctx.renderbuffer((W, H), components=1, dtype="i4")
        self._rgb = self._ctx.renderbuffer((W, H), components=4, dtype="f1")
        self._depth = self._ctx.depth_renderbuffer((W, H))
        self._fbo = self._ctx.framebuffer(
            color_attachments=[self._color, self._face, self._rgb], depth_attachment=self._depth
        )
        self._rgb_fbo = self._ctx.framebuffer(color_attachments=[self._rgb])  # to clear it to white alone
        self._lock = threading.Lock()
        self._buffers: dict[str, tuple] = {}  # program name -> (vbo, vao), reallocated when the size changes

    def rasterize(self, mesh: CameraSpaceMesh) -> Raster:
        # Several rasterizers (several EGL contexts) may live in one process: make ours current. The lock
        # serialises callers on different threads (e.g. a multi-threaded ROS executor).
        with self._lock, self._ctx:
            positions = mesh.vertices[mesh.faces].reshape(-1, 3)
            vao = self._vertex_array("raster", self._prog, positions)
            self._draw(mesh, self._prog, vao, shade=False)
            return self._read_raster()

    def shade(
        self, mesh: CameraSpaceMesh, normals: np.ndarray, colors: np.ndarray, light: np.ndarray
    ) -> tuple[Raster, np.ndarray]:
        """Raster and Phong-shaded (H, W, 3) uint8 image; normals, colors (V, 3), light (3,): camera frame."""
        H, W = self.size
        with self._lock, self._ctx:
            per_vertex = np.concatenate([mesh.vertices, normals, colors], axis=1)[mesh.faces].reshape(-1, 9)
            vao = self._vertex_array("shade", self._shade_prog, per_vertex)
            self._shade_prog["light"].value = tuple(float(x) for x in light)
            self._draw(mesh, self._shade_prog, vao, shade=True)
            image = np.empty((H, W, 3), dtype=np.uint8)
            self._fbo.read_into(image, components=3, dtype="f1", attachment=2)
            return self._read_raster(), image

    def _vertex_array(self, key: str, prog, data: np.ndarray):
        """Upload un-indexed per-vertex data (3F, 3 or 9) into a buffer kept between calls."""
        data = np.ascontiguousarray(data, dtype=np.float32)
        vbo, vao = self._buffers.get(key, (None, None))
        if vbo is not None and vbo.size == data.nbytes:
            vbo.write(data)
            return vao
        if vbo is not None:
            vao.release()
            vbo.release()
        vbo = self._ctx.buffer(data.tobytes())
        layout = (
            [(vbo, "3f", "in_pos")]
            if key == "raster"
            else [(vbo, "3f 3f 3f", "in_pos", "in_normal", "in_color")]
        )
        vao = self._ctx.vertex_array(prog, layout)
        self._buffers[key] = (vbo, vao)
        return vao

    def _draw(self, mesh: CameraSpaceMesh, prog, vao, shade: bool) -> None:
        import moderngl

        H, W = self.size
        ab, near, far = mesh.clip_params()
        prog["proj"].value = tuple(float(x) for x in ab)
        prog["near_far"].value = (near, far)
        self._fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        if shade:
            self._rgb_fbo.clear(1.0, 1.0, 1.0, 1.0)
        self._fbo.use()
        self._ctx.viewport = (0, 0, W, H)
        self._ctx.enable(moderngl.DEPTH_TEST)
        self._ctx.disable(moderngl.CULL_FACE)
        vao.render(moderngl.TRIANGLES)

    def _read_raster(self) -> Raster:
        H, W = self.size
        data = np.empty((H, W, 4), dtype=np.float32)
        self._fbo.read_into(data, components=4, dtype="f4", attachment=0)
        tid = np.empty((H, W), dtype=np.int32)
        self._fbo.read_into(tid, components=1, dtype="i4", attachment=1)
        tid -= 1
        return Raster(triangle_id=tid, barycentrics=data[..., :3], depth=data[..., 3])

    def close(self) -> None:
        """Release the GL objects and the context."""
        with self._lock, self._ctx:
            for vbo, vao in self._buffers.values():
                vao.release()
                vbo.release()
            for obj in (self._fbo, self._rgb_fbo, self._color, self._face, self._rgb, self._depth):
                obj.release()
            self._prog.release()
            self._shade_prog.release()
        self._buffers = {}
        self._ctx.release()
