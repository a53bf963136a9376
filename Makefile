# One-command entry points. Each target sets up .venv first (idempotent) so a fresh clone just works.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup browser ocr model-server chat test test-fast index eval clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: the CPU build. An unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[all,test]'
	touch $(STAMP)

setup: $(STAMP) ocr

# Scanned PDF pages are read by Tesseract (Debian's tesseract-ocr, with its English data). Installed when apt is
# available and we may use it; otherwise indexing skips scanned pages and its report says so.
ocr:
	command -v tesseract >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr >/dev/null; }; }; } || \
		echo "note: could not install tesseract-ocr; scanned PDF pages will be skipped (apt install tesseract-ocr)"

# Only the tests need a browser: they drive Debian's Chromium (Playwright's own download needs the internet).
# Installed when apt is available and we may use it; otherwise the browser tests are skipped with a message.
browser:
	test -x /usr/bin/chromium || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; } || \
		echo "note: could not install chromium; browser tests will be skipped"

# The model-server tests run llama.cpp's OpenAI-compatible server, which pip builds from source (about 20 minutes
# on two cores, once). If it cannot be built here, those tests are skipped with a message. Built for AVX2, not for
# the processor present: ggml's AMX kernels (chosen by a native build on AMX processors) crashed on the first
# matrix product here (a general protection fault loading the tile configuration).
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
model-server: $(STAMP)
	$(BIN)/python -c "import llama_cpp.server" 2>/dev/null || CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" \
		$(BIN)/pip install --quiet 'llama-cpp-python[server]>=0.3' || \
		echo "note: could not build llama-cpp-python[server]; the model-server tests will be skipped"

chat: $(STAMP) ocr
	HF_HUB_OFFLINE=1 $(BIN)/rag chat

index: $(STAMP) ocr
	HF_HUB_OFFLINE=1 $(BIN)/rag index

test: $(STAMP) browser ocr model-server
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

# The unit tests with their small fakes (no real models, no browser): a quick check while editing. `make test`
# stays the complete suite, and is what CI runs.
test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow" -p no:cacheprovider

clean:
	rm -rf index .pytest_cache
