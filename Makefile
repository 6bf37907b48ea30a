# kdd-sensor: `make run` (demo) and `make test` (whole suite) work on a fresh Debian/Ubuntu box.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := pcaps/demo.pcap

.PHONY: install run test bench lint deb system-deps clean

install: $(BIN)/kdd-sensor

$(BIN)/kdd-sensor: pyproject.toml setup.py feature_extractor/_kernel.c
	PY=$(PY) bash packaging/system-deps.sh build
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	@touch $@

run: install
	$(BIN)/kdd-sensor replay $(DEMO) -c packaging/demo.yaml

system-deps:
	PY=$(PY) bash packaging/system-deps.sh

$(VENV)/.test-deps: pyproject.toml $(BIN)/kdd-sensor
	$(BIN)/pip install -q -e '.[test,train,systemd]'
	@touch $@

test: system-deps install $(VENV)/.test-deps
	$(BIN)/python -m pytest -q -ra

bench: install
	$(BIN)/kdd-sensor bench

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .

deb: install
	bash packaging/build-deb.sh

clean:
	rm -rf $(VENV) build dist *.egg-info bench/out
