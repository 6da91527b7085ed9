"""Search: hybrid retrieval over an index, extractive answers, and chat query resolution."""

from rag.search.answer import Answer, AnswerConfig, AnswerSentence, build_answer
from rag.search.chat import resolve_query
from rag.search.fusion import FusionConfig
from rag.search.qa import Pipeline, Reply
from rag.search.question import Limits, Question, Turn
from rag.search.retriever import Retriever
from rag.search.subjects import SubjectFinder
from rag.search.types import MODES, Filters, Hit, Mode, SearchResult

__all__ = [
    "MODES",
    "Answer",
    "AnswerConfig",
    "AnswerSentence",
    "Filters",
    "FusionConfig",
    "Hit",
    "Limits",
    "Mode",
    "Pipeline",
    "Question",
    "Reply",
    "Retriever",
    "SearchResult",
    "SubjectFinder",
    "Turn",
    "build_answer",
    "resolve_query",
]
