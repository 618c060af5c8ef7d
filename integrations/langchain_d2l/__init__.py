"""LangChain integration of d2l-rag: a chat model and an LCEL step that answer from internalized documents."""

from langchain_d2l.chat_models import D2LChatModel
from langchain_d2l.runnables import D2LAnswerRunnable

__all__ = ["D2LAnswerRunnable", "D2LChatModel"]
