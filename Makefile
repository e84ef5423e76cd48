# The two commands of the README: `make demo` and `make test`.
# Both create or reuse .venv inside the checkout (tools/bootstrap.sh).
PY := .venv/bin/python

.PHONY: env demo test test-fast test-slow test-projects
env:
	bash tools/bootstrap.sh

demo: env
	$(PY) tools/run_demo.py

# both tiers in one run (the workers balance them): the fast one (contract,
# maths, conversion, configs, error messages; make test-fast) and the slow
# one (training, faults, several processes, whole-model export; test-slow)
test: env
	$(PY) -m pytest tests -q -p no:cacheprovider -n 2

test-fast: env
	$(PY) -m pytest tests -q -p no:cacheprovider -n 2 -m "not slow"

test-slow: env
	$(PY) -m pytest tests -q -p no:cacheprovider -n 2 -m slow

# optional integrations with their own requirements (YOLOv8: AGPL-3.0)
test-projects: env
	PATH="$$HOME/.local/bin:$$PATH" uv pip install -q --python $(PY) \
	  -r projects/yolov8_cga/requirements.txt
	$(PY) -m pytest projects/yolov8_cga/tests -q -p no:cacheprovider -n 2
