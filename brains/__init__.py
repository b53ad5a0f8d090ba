"""Whatever thinks of an answer: the seam (`protocol`), the offline intent matcher (`intent`), the LLM (`llm`)."""

from brains.protocol import (
    INTERRUPTED_MARK,
    Action,
    Brain,
    BrainError,
    BrainReply,
    Decision,
    Finished,
    ReplyPart,
    ReplyStream,
    Sentence,
    StillWriting,
    StreamingBrain,
    Turn,
)

__all__ = [
    "Action",
    "Brain",
    "BrainError",
    "BrainReply",
    "Decision",
    "INTERRUPTED_MARK",
    "Finished",
    "ReplyPart",
    "ReplyStream",
    "Sentence",
    "StillWriting",
    "StreamingBrain",
    "Turn",
]
