"""ivlm_core: InteractVLM contact estimation as plain Python.

Arrays and dataclasses in, arrays and dataclasses out; nothing here imports ROS. Data flows one way,
image + detections (+ CameraIntrinsics) -> one ContactResult per (person, object) pair, through one
of two backends (`backends.create_backend`):

- keypoint (CPU default): landmarks (mediapipe pose, `detect`) -> body fit (anny in the camera frame,
  `fit`) -> contact reasoning (category priors + image evidence, `backends.keypoint`) -> placement
  of the object against the body (`reconstruct`, pairs in contact only).
- interactvlm (GPU): the body and each object mesh are rendered once from the fixed view rigs
  (`render`) -> per image, MV-Loc localizes the contact in every view (`backends.interactvlm`) ->
  the masks are lifted onto the mesh vertices (`render.lift`).

Shared by both: `types` (camera, detections, results), `geometry` (mesh checks, normals), `body`,
`objects` (meshes), `colours`, `metrics`.
"""

__version__ = "0.1.0"
