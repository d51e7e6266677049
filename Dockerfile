# CPU-only image: the locked dependencies, the embedding model bundled, knowledge baked in.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    ANONYMIZED_TELEMETRY=False \
    HOST=0.0.0.0 \
    PORT=8000 \
    LOG_FORMAT=json \
    KNOWLEDGE_DIR=/app/knowledge \
    CHROMA_PATH=/app/chroma_db \
    MODELS_DIR=/app/models \
    DATA_DIR=/app/data \
    EMBEDDING_CACHE_DIR=/app/models/embeddings

WORKDIR /app

# What was tested: every package pinned, with its hashes (requirements.lock, `make lock`). Torch is the CPU
# build, which only PyTorch's CPU index serves: an extra index beside PyPI.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY requirements.lock requirements-llama.lock ./
RUN pip install --require-hashes --extra-index-url "${TORCH_INDEX_URL}" -r requirements.lock

COPY pyproject.toml README.md ./
COPY api ./api
COPY agent ./agent
COPY rag ./rag
RUN pip install --no-deps .

# GGUF models through llama.cpp (the `llama` extra), e.g.
#   docker build --build-arg WITH_LLAMA=1 --build-arg BAKE_MODELS=owner/repo/model.gguf .
# llama-cpp-python compiles llama.cpp here (minutes); the compilers go again, its OpenMP runtime stays.
ARG WITH_LLAMA=""
RUN if [ -n "${WITH_LLAMA}" ]; then \
        apt-get update && apt-get install -y --no-install-recommends build-essential cmake libgomp1 \
        && CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
           CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF" \
           pip install --require-hashes --extra-index-url "${TORCH_INDEX_URL}" -r requirements-llama.lock \
        && apt-get purge -y build-essential cmake && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*; \
    fi

COPY knowledge ./knowledge

# Bake local models into the image (comma-separated hub ids, or owner/repo/file.gguf), e.g.
#   docker build --build-arg BAKE_MODELS=Qwen/Qwen2.5-0.5B-Instruct .
# Empty by default: the local tier is then skipped unless models are mounted at /app/models.
ARG BAKE_MODELS=""
RUN mkdir -p /app/models && for model in $(echo "${BAKE_MODELS}" | tr ',' ' '); do \
        HF_HUB_OFFLINE=0 TRANSFORMERS_OFFLINE=0 python -m agent download-models --model "${model}" || exit 1; \
    done

# The embedding model's ONNX graph, exported and checked against sentence-transformers once, here: every
# start then embeds with ONNX Runtime, without importing torch (healthy in about a second).
RUN python -m rag prepare-embedder

# The folders the service writes, the app user's: a named volume mounted there starts with this owner.
RUN useradd --create-home --uid 10001 app \
    && mkdir -p /app/chroma_db /app/data /app/site \
    && chown -R app:app /app/chroma_db /app/data /app/site /app/models
USER app

EXPOSE 8000
# Generous start period: the first start embeds the knowledge folder.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health', timeout=4)"]

CMD ["python", "-m", "api"]
