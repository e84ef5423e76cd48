# The two commands of the README: `make demo` and `make test`.
# Both create or reuse .venv inside the checkout (tools/bootstrap.sh).
PY := .venv/bin/python

.PHONY: env demo test
env:
	bash tools/bootstrap.sh

demo: env
	$(PY) tools/run_demo.py

test: env
	$(PY) -m pytest tests -q -p no:cacheprovider -n 2
