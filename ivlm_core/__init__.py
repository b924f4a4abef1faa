"""ivlm_core: InteractVLM contact estimation (Render-Localize-Lift) as plain Python.

Arrays and dataclasses in, arrays and dataclasses out; nothing here imports ROS.
Data flows one way: image -> detections -> body fit -> render -> localize -> lift ->
reconstruct; one module per stage.
"""

__version__ = "0.1.0"
