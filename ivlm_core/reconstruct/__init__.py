"""Joint human-object reconstruction: the object's pose, contact points and grasp regions in 3D."""

from ivlm_core.reconstruct.export import scene_glb
from ivlm_core.reconstruct.joint import ReconstructConfig, reconstruct
from ivlm_core.reconstruct.pose import PoseWeights, Stage

__all__ = ["PoseWeights", "ReconstructConfig", "Stage", "reconstruct", "scene_glb"]
