"""Ingest: a corpus folder -> documents with sections at exact offsets -> passages.

One parser per format (``markdown``, ``html``, ``pdf``, ``docx``, ``plaintext``): the formats
with markup render ``blocks`` into plain text, plain text goes through ``structure`` and a text
``profile`` (its structure was lost), and ``chunking`` cuts every document into passages.
"""

from rag.ingest.chunking import Chunk, ChunkerSettings, chunk_documents
from rag.ingest.loader import PARSER_VERSION, SUFFIXES, load_corpus, parse_source
from rag.ingest.profiles import DEFAULT_TEXT_PROFILE, PROFILES, TextProfile, profile_for
from rag.ingest.sentences import list_titles, passage_sentences
from rag.ingest.types import Document, Section, SourceFile

__all__ = [
    "DEFAULT_TEXT_PROFILE",
    "PARSER_VERSION",
    "PROFILES",
    "SUFFIXES",
    "Chunk",
    "ChunkerSettings",
    "Document",
    "Section",
    "SourceFile",
    "TextProfile",
    "chunk_documents",
    "list_titles",
    "load_corpus",
    "parse_source",
    "passage_sentences",
    "profile_for",
]
