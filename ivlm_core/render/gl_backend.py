"""CPU rasterizer backend: OpenGL 3.3 through moderngl on a headless EGL context (Mesa llvmpipe here).

Faces are drawn un-indexed (3 vertices per face) so that `gl_VertexID % 3` names the corner and the
perspective-correct interpolation of a one-hot corner vector is exactly the barycentric coordinate.
An RGBA32F attachment holds (b0, b1, b2, camera z) per pixel and an R32I attachment the face id + 1
(integer attachments clear to 0), so the readback needs no per-pixel post-processing.
"""

from __future__ import annotations

import numpy as np

from ivlm_core.render.rasterize import CameraSpaceMesh, Raster

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
        self._color = self._ctx.renderbuffer((W, H), components=4, dtype="f4")
        self._face = self._ctx.renderbuffer((W, H), components=1, dtype="i4")
        self._depth = self._ctx.depth_renderbuffer((W, H))
        self._fbo = self._ctx.framebuffer(
            color_attachments=[self._color, self._face], depth_attachment=self._depth
        )
        self._vbo = None
        self._vao = None

    def rasterize(self, mesh: CameraSpaceMesh) -> Raster:
        # Several rasterizers (several EGL contexts) may live in one process: make ours current.
        with self._ctx:
            return self._draw(mesh)

    def _draw(self, mesh: CameraSpaceMesh) -> Raster:
        import moderngl

        H, W = self.size
        ab, near, far = mesh.clip_params()
        positions = np.ascontiguousarray(mesh.vertices[mesh.faces].reshape(-1, 3), dtype=np.float32)
        if self._vbo is None or self._vbo.size != positions.nbytes:
            if self._vao is not None:
                self._vao.release()
                self._vbo.release()
            self._vbo = self._ctx.buffer(positions.tobytes())
            self._vao = self._ctx.vertex_array(self._prog, [(self._vbo, "3f", "in_pos")])
        else:
            self._vbo.write(positions)
        self._prog["proj"].value = tuple(float(x) for x in ab)
        self._prog["near_far"].value = (near, far)
        self._fbo.use()
        self._ctx.viewport = (0, 0, W, H)
        self._ctx.enable(moderngl.DEPTH_TEST)
        self._ctx.disable(moderngl.CULL_FACE)
        self._fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        self._vao.render(moderngl.TRIANGLES)
        data = np.empty((H, W, 4), dtype=np.float32)
        self._fbo.read_into(data, components=4, dtype="f4", attachment=0)
        tid = np.empty((H, W), dtype=np.int32)
        self._fbo.read_into(tid, components=1, dtype="i4", attachment=1)
        tid -= 1
        return Raster(triangle_id=tid, barycentrics=data[..., :3], depth=data[..., 3])

    def close(self) -> None:
        """Release the GL objects and the context."""
        with self._ctx:
            for obj in (self._vao, self._vbo, self._fbo, self._color, self._face, self._depth, self._prog):
                if obj is not None:
                    obj.release()
        self._vao = self._vbo = None
        self._ctx.release()
