# `make run` and `make test` set up what is missing, then do their job.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint demo-model clean-cache

$(PY):
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Re-install only when the declared dependencies or their pinned versions change.
$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[viewer,test]"
	@echo "compiling the kernels of TLift and re-ranking (once per machine, about a minute)"
	$(PY) -c "from engine.postprocess.pipeline import warm_up; warm_up()"
	@touch $(STAMP)

run: $(STAMP)
	$(PY) run_viewer.py $(ARGS)

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check engine viewer tests benchmarks run_viewer.py

clean-cache:
	rm -rf ~/.cache/reid-inspector

# Reproduce the shipped demo checkpoint (about 40 minutes on an idle 2-core CPU at 256x128, 17 at
# 128x64); see viewer/demo/README.md.
# No ImageNet weights can be downloaded here, so the trunk is first trained as the global
# baseline on synthetic A (a stand-in for ImageNet pre-training), then QAConv starts from it.
# DEMO_SIZE picks the input (256x128 gives 16x8 maps; see benchmarks/bench_demo_resolution.py).
DEMO_SIZE ?= 256x128
DEMO_H = $(word 1,$(subst x, ,$(DEMO_SIZE)))
DEMO_W = $(word 2,$(subst x, ,$(DEMO_SIZE)))
demo-model: $(STAMP)
	$(PY) -m engine synth --domain A --out data/synth/A --seed 0
	$(PY) -m engine train --data data/synth/A --out runs/global --method global --arch resnet18 \
		--height $(DEMO_H) --width $(DEMO_W) --pretrained none --batch-size 32 --lr 0.03 --max-epochs 4 \
		--workers 1 --seed 0
	$(PY) -m engine train --data data/synth/A --out runs/demo --arch resnet18 --height $(DEMO_H) \
		--width $(DEMO_W) --pretrained runs/global/model.pt --batch-size 32 --lr 0.005 --max-epochs 5 \
		--workers 1 --seed 0
	cp runs/demo/model.pt runs/demo/model.json viewer/demo/
