"""InteractVLM's MV-Loc (LLaVA + SAM, camera-conditioned multi-view masks) on transformers classes.

Modules follow the data: `prompts` and `tokenizer` (text in), `model` (the network), `checkpoint`
(released weights in), `generation` (greedy answers), `mvloc` (the Localize stage), `backend` (the
ContactBackend: render -> localize -> lift), `train` (LoRA fine-tuning).
"""

from ivlm_core.backends.interactvlm.backend import InteractVLMBackend
from ivlm_core.backends.interactvlm.mvloc import Localization, MVLoc, MVLocConfig

__all__ = ["InteractVLMBackend", "Localization", "MVLoc", "MVLocConfig"]
