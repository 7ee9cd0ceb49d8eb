# edgehls: `make demo` compiles and simulates the bundled example; `make test` runs the suite.
# Both install what they need: Debian packages via apt-get, Python packages into .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EDGEHLS := $(VENV)/bin/edgehls
APT_PKGS := iverilog yosys verilator
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PE ?= 8x8
DEMO_DIR ?= build/demo
CNN_DIR ?= build/digits_cnn

.PHONY: all demo demo-cnn test test-full lint bench clean tools tools-fpga venv help

help:
	@echo "make demo       compile examples/digits_mlp at --pe $(PE) and simulate it in Icarus"
	@echo "make demo-cnn   compile examples/digits_cnn (PyTorch CNN) at --pe $(PE) and simulate it"
	@echo "make test       the default test suite (representative RTL simulations)"
	@echo "make test-full  every test, including slow RTL simulations"
	@echo "make lint       ruff, and verilator --lint-only -Wall on hw/ and a generated design"
	@echo "make bench      performance figures (cycles, utilization, compile and sim time)"
	@echo "make clean      remove build outputs (keeps .venv)"

tools:
	@missing=""; for t in iverilog yosys verilator; do command -v $$t >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing $(APT_PKGS) with apt-get"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PKGS) >/dev/null; \
	fi

tools-fpga:
	@command -v nextpnr-ice40 >/dev/null || { echo "installing nextpnr-ice40 fpga-icestorm with apt-get"; \
	  $(SUDO) apt-get update -qq; DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nextpnr-ice40 fpga-icestorm >/dev/null; }

$(VENV)/.stamp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.stamp

demo: tools venv
	$(EDGEHLS) compile examples/digits_mlp/model.onnx --pe $(PE) \
	  --calib examples/digits_mlp/data.npz --eval examples/digits_mlp/data.npz \
	  --samples 20 -o $(DEMO_DIR) --force
	$(EDGEHLS) simulate $(DEMO_DIR)

demo-cnn: tools venv
	$(EDGEHLS) compile examples/digits_cnn/model.onnx --pe $(PE) \
	  --calib examples/digits_cnn/data.npz --eval examples/digits_cnn/data.npz \
	  --samples 8 -o $(CNN_DIR) --force
	$(EDGEHLS) simulate $(CNN_DIR)

test: tools venv
	$(PY) -m pytest -q -n 2

test-full: tools tools-fpga venv
	$(PY) -m pip install -q -e '.[dev,fpga,examples]'
	$(PY) -m pytest -q -n 2 -m "slow or not slow"

lint: tools venv
	$(VENV)/bin/ruff check compiler tests sim examples bench
	verilator --lint-only -Wall hw/lint.vlt hw/*.v --top-module edgehls_core
	$(EDGEHLS) compile examples/digits_mlp/model.onnx --pe 4x4 -o build/lint --force -q
	$(MAKE) -C build/lint lint

bench: tools venv
	$(PY) bench/run.py
	$(PY) bench/compress.py
	$(PY) bench/quant.py

clean:
	rm -rf build sim_build results.xml .pytest_cache
