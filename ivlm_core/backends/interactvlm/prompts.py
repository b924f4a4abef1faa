"""InteractVLM's prompt strings and the llava_v1 conversation template, token for token.

Sources: `utils/utils.py` (question/answer lists), `model/llava/conversation.py` (`conv_llava_v1`),
`run_demo.py` (inference prompts). The model was trained on exactly these strings, so any change
(even whitespace) changes its answers.
"""

from __future__ import annotations

IMAGE_TOKEN = "<image>"
IM_START_TOKEN = "<im_start>"
IM_END_TOKEN = "<im_end>"
SEG_TOKEN = "[SEG]"
HSEG_TOKEN = "[HSEG]"
OSEG_TOKEN = "[OSEG]"
ISEG_TOKEN = "[ISEG]"

SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
ROLES = ("USER", "ASSISTANT")
SEP = " "
SEP2 = "</s>"

HCONTACT_QUESTIONS = [
    "Segment the area on the human's body that is in direct contact with the {class_name} in this image.",
    "Identify and mask the part of the human that is touching or interacting with the {class_name} "
    "in this scene.",
    "Show the contact points on the human where they are physically connected to or interacting with "
    "{class_name}.",
    "Please provide a segmentation mask of the human's body parts that are in contact with {class_name}.",
    "Highlight the areas on the human where there is physical interaction or contact with {class_name}.",
]
HCONTACT_ANSWERS = [
    "It is [HTOKEN].",
    "Sure, the human contact region is [HTOKEN].",
    "Sure, the contact points on human is [HTOKEN].",
    "Sure, the contact mask is [HTOKEN].",
    "[HTOKEN].",
]
HCONTACT_PARTS_QUESTIONS = [
    "Which body parts are in contact with the {class_name}? Segment these contact areas.",
    "Name and segment the specific body parts making contact with the {class_name}.",
    "Looking at the {class_name}, what parts of the human body are touching it? Show these contact regions.",
    "For the {class_name}, list and mask the human body parts that are in contact.",
    "Regarding the {class_name}, identify which body parts are touching it and highlight these "
    "contact areas.",
]
HCONTACT_PARTS_ANSWERS = [
    "The contacting body parts are {body_parts}, and the contact region is [HTOKEN].",
    "The involved body parts are {body_parts}, with the contact mask at [HTOKEN].",
    "Contact occurs at {body_parts}, with the contact points shown at [HTOKEN].",
    "The body parts in contact are {body_parts}, with contact mask at [HTOKEN].",
    "Body parts: {body_parts}, contact mask: [HTOKEN].",
]
OCONTACT_QUESTIONS = [
    "Segment the area on the {class_name} where the human is making direct contact in this image.",
    "Identify and mask the part of the {class_name} that the human is touching or interacting with "
    "in this scene.",
    "Show the contact points on the {class_name} where the human is physically connected to or interacting "
    "with it.",
    "Please provide a segmentation mask of the parts of the {class_name} that are in contact with the human.",
    "Highlight the areas on the {class_name} where there is physical interaction or contact with the human.",
]
OCONTACT_ANSWERS = [
    "It is [OTOKEN].",
    "Sure, the object contact region is [OTOKEN].",
    "Sure, the contact points on object is [OTOKEN].",
    "Sure, the contact mask is [OTOKEN].",
    "[OTOKEN].",
]

# run_demo.py's fixed inference prompts. The object prompt keeps the demo's quirk: a leading '"' and a
# trailing '",' that the released oafford model really sees.
DEMO_HCONTACT_PROMPT = "Which body parts are in contact with the {class_name}? Segment these contact areas."
DEMO_H2DCONTACT_PROMPT = (
    "Segment the area on the human's body that is in direct contact with the {class_name} in this image."
)
DEMO_OAFFORD_PROMPT = (
    '"What type of affordance does the human-object interaction suggest? Then, segment the area on the '
    '{class_name} where the human is making contact.",'
)


def object_name(label: str) -> str:
    """The object name as the demo passes it: lower-case, underscores kept (`tennis_racket`)."""
    name = label.strip().lower().replace(" ", "_")
    if not name:
        raise ValueError("object label is empty; the prompt needs an object name")
    return name


def conversation(question: str, answer: str = "", use_mm_start_end: bool = True) -> str:
    """The llava_v1 text for one turn: `<image>\\n{question}` as USER, `answer` (may be "") as ASSISTANT.

    With an empty answer the text ends in "ASSISTANT:" (the inference prompt); with an answer it ends
    in "{answer}</s>" (a training sample).
    """
    image = IM_START_TOKEN + IMAGE_TOKEN + IM_END_TOKEN if use_mm_start_end else IMAGE_TOKEN
    text = SYSTEM + SEP + ROLES[0] + ": " + image + "\n" + question + SEP + ROLES[1] + ":"
    if answer:
        text += " " + answer + SEP2
    return text
