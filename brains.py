"""Chooses the brain for this deployment: the LLM when one is configured, else the offline intent matcher."""

from __future__ import annotations

import logging

from brain import Brain
from config import Settings
from intent_brain import IntentBrain
from llm_brain import LLMBrain

log = logging.getLogger(__name__)


def build_brain(settings: Settings) -> Brain:
    """LLMBrain when OPENAI_API_KEY or OPENAI_BASE_URL is set and ai.enabled, otherwise IntentBrain."""
    if settings.secrets.llm_configured and settings.get("ai.enabled"):
        log.info("brain: LLM (model=%s)", settings.get("ai.model"))
        return LLMBrain(settings)
    log.info("brain: offline intent matcher (LLM needs ai.enabled and OPENAI_API_KEY or OPENAI_BASE_URL)")
    return IntentBrain(settings)
